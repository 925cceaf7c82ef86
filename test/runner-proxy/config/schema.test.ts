import t from 'tap';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/runner-proxy/config/load.js';
import { ConfigError } from '../../../src/runner-proxy/config/schema.js';
import { run } from '../../../src/cli/main.js';

const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = (s: string) => ((out += s), true);
  process.stderr.write = (s: string) => ((err += s), true);
  try {
    return { code: await run(argv), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

t.test('the shipped example is valid and means what it says', async (t) => {
  const { config } = loadConfig('runner-config/gitlab-otel.yml', {});
  t.equal(config.upstream.url.origin, 'https://gitlab.example.com');
  t.same(config.listen, { host: '172.17.0.1', port: 8080 });
  t.equal(config.upstream.headersTimeoutMs, 11 * 60_000);
  t.equal(config.telemetry.negotiation, 'payload');
  t.equal(config.endpoints.length, 1);
  t.match(config.endpoints[0], {
    name: 'primary',
    url: 'https://collector.example.com:4317',
    compression: 'gzip',
    timeoutMs: 10_000,
    auth: { type: 'oidc_client_credentials', clientId: 'gitlab-otel', clientAuth: { method: 'client_secret' } },
    queue: { maxSpans: 20000, maxBytes: 64 * 1024 * 1024, maxAgeMs: 600_000, batchDelayMs: 1000 },
  });
  t.same(config.shutdown, { graceMs: 60_000, flushTimeoutMs: 5000 });
});

t.test('every problem is reported with its key path and the file', async (t) => {
  const bad = file(
    'bad.yml',
    readFileSync('runner-config/gitlab-otel.yml', 'utf8')
      .replace('negotiation: payload', 'negotiation: sometimes')
      .replace('batch_size: 512', 'batch_size: lots'),
  );
  const found = problems(() => loadConfig(bad, {}));
  t.equal(found.length, 2);
  t.ok(found.some((p) => /^telemetry.negotiation: expected one of payload \| payload-or-variable, got "sometimes"/.test(p)));
  t.ok(found.some((p) => /^endpoints\[0\].queue.batch_size: expected a whole number/.test(p)));
  const r = await cli(['check-config', bad]);
  t.equal(r.code, 2);
  t.match(r.err, `${bad}: telemetry.negotiation`);
  t.match(r.err, `${bad}: endpoints[0].queue.batch_size`);
  t.equal((await cli(['check-config', 'runner-config/gitlab-otel.yml'])).code, 0);
  t.equal((await cli(['check-config'])).code, 2, 'no file: usage error');
});

t.test('shapes, types and values', async (t) => {
  const check = (yaml: string) => problems(() => loadConfig(file('x.yml', yaml), {}));
  t.match(check('listen: 1.2.3.4:8080\n'), [/upstream.url: required/]);
  t.match(check('upstream: {url: "https://user:pw@gitlab"}\n'), [/credentials in the URL/]);
  t.match(check('upstream: {url: https://g, extra: 1}\n'), [/upstream.extra: unknown key/]);
  t.match(check('upstream: {url: https://g}\nlisten: "localhost"\n'), [/listen: expected HOST:PORT/]);
  t.match(check('upstream: {url: https://g}\nendpoints: {url: x}\n'), [/endpoints: expected a list/]);
  t.match(check('upstream: {url: https://g}\nendpoints: [{url: "grpc://c:4317"}]\n'), [/endpoints\[0\].url: expected a http or https URL/]);
  t.match(check('upstream: {url: https://g}\nendpoints: [{url: "https://c", auth: {type: oidc_client_credentials}}]\n'), [
    /auth: issuer \(for discovery\) or token_endpoint is required/,
    /auth.client_id: required/,
    /client_secret_file or private_key_file is required/,
  ]);
  t.match(
    check(
      'upstream: {url: https://g}\nendpoints: [{url: "https://c", auth: {type: oidc_token_exchange, issuer: "https://i", client_id: c}}]\n',
    ),
    [/subject_token_file: required/],
  );
  t.match(check('upstream: {url: https://g}\nendpoints: [{name: a, url: "https://c"}, {name: a, url: "https://d"}]\n'), [
    /duplicate endpoint name/,
  ]);
  t.match(check('upstream: {url: https://g}\nendpoints: [{url: "http://c", tls: {ca_file: x}}]\n'), [/plaintext http/]);
  t.match(check('upstream: {url: https://g}\nspool: {max_bytes: 1GiB}\n'), [/spool.dir: required/]);
  t.match(check('upstream: {url: https://g}\nsampling: {ratio: 2}\n'), [/sampling.ratio: expected a number from 0 to 1/]);
});

t.test('GitLab 19 contract keys: job_router, telemetry.trace_ids, use_payload_endpoints (docs/runner-protocol.md)', async (t) => {
  const load = (yaml: string) => loadConfig(file('g19.yml', yaml), {}).config;
  const defaults = load('upstream: {url: https://g}\n');
  t.equal(defaults.jobRouter, 'decline', 'discovery answered 501 by default');
  t.equal(defaults.telemetry.traceIds, 'gitlab', "GitLab's trace ids by default");
  t.equal(defaults.telemetry.usePayloadEndpoints, true, "GitLab's collectors served by default");
  const set = load('upstream: {url: https://g}\njob_router: pass\ntelemetry: {trace_ids: instance-scoped, use_payload_endpoints: false}\n');
  t.match(set, { jobRouter: 'pass', telemetry: { traceIds: 'instance-scoped', usePayloadEndpoints: false } });
  const check = (yaml: string) => problems(() => loadConfig(file('g19-bad.yml', yaml), {}));
  t.match(check('upstream: {url: https://g}\njob_router: answer-501\n'), [
    /^job_router: expected one of decline \| pass, got "answer-501"/,
  ]);
  t.match(check('upstream: {url: https://g}\ntelemetry: {trace_ids: random}\n'), [
    /^telemetry.trace_ids: expected one of gitlab \| instance-scoped, got "random"/,
  ]);
  const example = loadConfig('runner-config/gitlab-otel.yml', {}).config;
  t.match(
    example,
    { jobRouter: 'decline', telemetry: { traceIds: 'gitlab', usePayloadEndpoints: true } },
    'the example states the defaults',
  );
});

t.test('runner-proxy refuses a bad configuration with exit code 2', async (t) => {
  const r = await cli(['runner-proxy', '--config', file('bad2.yml', 'upstream: {url: nope}\n')]);
  t.equal(r.code, 2);
  t.match(r.err, /upstream.url: not a URL/);
  t.equal((await cli(['runner-proxy', '--bogus'])).code, 2);
  t.equal((await cli(['nope'])).code, 2);
  t.equal((await cli(['--version'])).out, `${JSON.parse(readFileSync('package.json', 'utf8')).version}\n`, 'version matches package.json');
});

t.test('telemetry.thread: main by default, worker when set, anything else named with the allowed values', async (t) => {
  const load = (yaml: string) => loadConfig(file('thread.yml', yaml), {}).config;
  t.equal(load('upstream: {url: https://g}\n').telemetry.thread, 'main', 'on the forwarding thread by default');
  t.equal(load('upstream: {url: https://g}\ntelemetry: {thread: worker}\n').telemetry.thread, 'worker');
  t.match(
    problems(() => loadConfig(file('thread-bad.yml', 'upstream: {url: https://g}\ntelemetry: {thread: threads}\n'), {})),
    [/^telemetry.thread: expected one of main \| worker, got "threads"/],
  );
  t.equal(loadConfig('runner-config/gitlab-otel.yml', {}).config.telemetry.thread, 'main', 'the example states the default');
});
