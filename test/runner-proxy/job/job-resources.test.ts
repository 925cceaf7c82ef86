import t from 'tap';
import { JobResources, MAX_CACHED_RESOURCES } from '../../../src/runner-proxy/job/job-resources.js';
import { RESOURCE } from '../../../src/telemetry/attributes.js';

t.test("a job's resource: the proxy's attributes plus what the runner said about itself", async (t) => {
  const r = new JobResources({ 'service.name': 'proxy' });
  const docker = r.forRunner({ version: '19.4.0', executor: 'docker', platform: 'linux', architecture: 'amd64', shell: 'bash' });
  t.same(docker.attributes, {
    'service.name': 'proxy',
    [RESOURCE.runnerVersion]: '19.4.0',
    [RESOURCE.runnerExecutor]: 'docker',
    [RESOURCE.runnerPlatform]: 'linux',
    [RESOURCE.runnerArchitecture]: 'amd64',
  });
  t.same(r.forRunner({}).attributes, { 'service.name': 'proxy' }, 'a runner that said nothing: the base attributes only');
});

t.test('jobs of the same runner share one Resource (one ResourceSpans per batch); the cache is bounded', async (t) => {
  const r = new JobResources({});
  const a = r.forRunner({ version: '1', executor: 'shell' });
  t.equal(r.forRunner({ version: '1', executor: 'shell', shell: 'pwsh' }), a, 'fields not on the resource do not split it');
  t.not(r.forRunner({ version: '2', executor: 'shell' }), a);
  for (let i = 0; i < 3 * MAX_CACHED_RESOURCES; i++) r.forRunner({ version: String(i) });
  t.ok(r.size <= MAX_CACHED_RESOURCES + 1, `bounded (${r.size})`);
});
