// Finding 5 (issue #16): the spool's endpoint record used to re-create a
// collector that was no longer configured, with its auth and TLS settings read
// back from disk. Now spans spooled for a collector removed from the
// configuration are dropped and counted (reason endpoint_removed), never sent,
// and no setting but the endpoint's name is ever written to or read from disk
// (docs/security.md#removed-endpoints).
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { GitLabRunnerApiSimulator } from '../../src/lab/gitlab-runner-api.js';
import { buildJobLog } from '../../src/lab/job-log-builder.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import { RunnerSimulator } from '../../src/lab/runner.js';
import { envDefaults } from '../../src/runner-proxy/config/load.js';
import { validateConfig } from '../../src/runner-proxy/config/schema.js';
import { startRunnerProxy } from '../../src/runner-proxy/runtime.js';
import { silentLogger } from '../../src/log.js';
import { OtlpReceiver } from '../../src/telemetry/receiver.js';
import { metricValue } from './support.js';

t.test('a collector removed from the configuration does not come back from the spool', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-removed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken: 'glrt-removed' }).start();
  t.teardown(() => gitlab.stop());
  const kept = await new OtlpReceiver({}).start();
  t.teardown(() => kept.stop());
  let refuse = true;
  const removed = await new OtlpReceiver({
    behaviour: () => (refuse ? { kind: 'error', code: status.UNAVAILABLE, details: 'down' } : { kind: 'ok' }),
  }).start();
  t.teardown(() => removed.stop());
  const fast = { compression: 'none', queue: { batch_delay: '20ms' }, retry: { initial_backoff: '50ms', max_backoff: '200ms' } };
  const doc = (endpoints: Record<string, unknown>[]) => ({
    listen: '127.0.0.1:0',
    admin: null,
    upstream: { url: gitlab.url },
    spool: { dir: join(dir, 'spool') },
    shutdown: { grace: '1s', flush_timeout: '300ms' },
    endpoints,
  });
  const keptEp = { name: 'kept', url: kept.url, ...fast };
  // Static headers to loopback are allowed; they must never be written down or come back.
  const removedEp = { name: 'old-vendor', url: removed.url, headers: { 'x-api-key': 'CANARY-vendor-key' }, ...fast };

  const first = await startRunnerProxy(validateConfig(doc([keptEp, removedEp]), envDefaults({}).defaults), { log: silentLogger });
  const runner = new RunnerSimulator({ url: `http://127.0.0.1:${first.address.port}`, token: 'glrt-removed' });
  t.teardown(() => runner.close());
  gitlab.enqueue(makeJobPayload({ id: 6101 }));
  const job = await runner.requestJob();
  const script = buildJobLog('success', { start: new Date(), timestamps: true });
  await runner.runJob(job!, { log: script.bytes, state: 'success' });
  await kept.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  await first.stop();
  const spooled = kept.spans.length;
  t.ok(spooled > 0 && removed.spans.length === 0, `the removed collector refused everything; ${spooled} spans spooled for it`);
  const files = readdirSync(join(dir, 'spool'), { recursive: true, withFileTypes: true }).filter((e) => e.name === 'endpoint.json');
  for (const f of files) {
    const record = JSON.parse(readFileSync(join(f.parentPath, f.name), 'utf8')) as Record<string, unknown>;
    t.same(Object.keys(record), ['name'], `endpoint.json of ${String(record.name)} holds its name only`);
  }

  const callsBefore = removed.calls.length;
  refuse = false;
  const second = await startRunnerProxy(validateConfig(doc([keptEp]), envDefaults({}).defaults), { log: silentLogger });
  t.teardown(() => second.stop());
  await second.pipeline.flush(1000);
  const metrics = await second.registry.metrics();
  t.equal(
    metricValue(metrics, 'gitlab_otel_spans_dropped_total', { endpoint: 'old-vendor', reason: 'endpoint_removed' }),
    spooled,
    'its spooled spans are dropped and counted',
  );
  t.same(
    second.pipeline.health().map((h) => h.name),
    ['kept'],
    'only the configured collector exists',
  );
  t.equal(removed.calls.length, callsBefore, 'the removed collector got no call after the restart');
  t.equal(removed.spans.length, 0, 'and no span');
});
