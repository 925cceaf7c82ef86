// Finding 4 (issue #16): static headers (config `headers`, OTEL_EXPORTER_OTLP_HEADERS)
// went over plaintext to any host while tokens were refused. Now one rule
// covers every credential (docs/security.md#plaintext-credentials): refused at
// configuration time with the key path, so `runner-proxy` and `check-config`
// exit non-zero before any name lookup or connection; loopback and
// allow_insecure_auth (logged) stay possible.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHILD_NODE_ARGS, CLI_ENTRY } from '../support/child-node.js';
import { jobEnv, runProcess } from '../support/in-job-harness.js';
import { freePort, writeConfig } from '../support/runner-proxy-child.js';
import { exportJobSpans, planJobExport } from '../../src/in-job/job-export.js';
import { newSpanId, newTraceId, nowNanos } from '../../src/telemetry/spans.js';

const WITNESS = join(dirname(fileURLToPath(import.meta.url)), 'network-witness.ts');
const SECRET = 'sekret-api-key-0123456789';

const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-plaintext-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], env: Record<string, string> = {}) {
  return runProcess(process.execPath, [...CHILD_NODE_ARGS, '--import', WITNESS, CLI_ENTRY, ...args], jobEnv(env), 60_000);
}

const witnessed = (stderr: string): string[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('NETWORK-WITNESS'))
    // A Unix socket (the child's IPC with the test runner) is not the network.
    .filter((l) => !/^NETWORK-WITNESS connect \//.test(l));

t.test(
  'config headers over plaintext to a non-loopback host: both commands exit 2 naming endpoints[0].headers, nothing dialled',
  async (t) => {
    const port = await freePort();
    const file = writeConfig(dir, 'headers.yml', {
      listen: `127.0.0.1:${port}`,
      admin: null,
      upstream: { url: 'http://127.0.0.1:1' },
      endpoints: [{ name: 'saas', url: 'http://collector.invalid:4317', headers: { 'x-api-key': SECRET } }],
    });
    for (const args of [
      ['check-config', file],
      ['runner-proxy', '--config', file],
    ]) {
      const run = await cli(args);
      t.equal(run.code, 2, `${args[0]} exits 2`);
      t.match(
        run.stderr,
        /endpoints\[0\]\.headers: static headers x-api-key over plaintext http:\/\/ to a non-loopback host are refused/,
        `${args[0]} names the key`,
      );
      t.notMatch(run.stderr + run.stdout, SECRET, `${args[0]} never prints the value`);
      t.same(witnessed(run.stderr), [], `${args[0]} looked nothing up and connected nowhere`);
    }
  },
);

t.test('OTEL_EXPORTER_OTLP_HEADERS over plaintext: refused, and said where it came from', async (t) => {
  const file = writeConfig(dir, 'env.yml', { upstream: { url: 'http://127.0.0.1:1' } });
  const run = await cli(['check-config', file], {
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.invalid:4317',
    OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer%20${SECRET}`,
  });
  t.equal(run.code, 2);
  t.match(run.stderr, /headers: static headers authorization \(from OTEL_EXPORTER_OTLP_HEADERS\)/);
  t.notMatch(run.stderr + run.stdout, SECRET);
  t.same(witnessed(run.stderr), []);
});

t.test('a token over plaintext: refused at auth, even for 127.evil.example', async (t) => {
  const file = writeConfig(dir, 'auth.yml', {
    upstream: { url: 'http://127.0.0.1:1' },
    endpoints: [{ url: 'http://127.evil.example:4317', auth: { type: 'gcp_workload_identity', audience: 'a' } }],
  });
  const run = await cli(['check-config', file]);
  t.equal(run.code, 2);
  t.match(run.stderr, /endpoints\[0\]\.auth: a bearer token over plaintext/);
});

t.test('allowed: loopback, TLS, tenant header, and allow_insecure_auth (logged at start)', async (t) => {
  const ok = writeConfig(dir, 'ok.yml', {
    upstream: { url: 'http://127.0.0.1:1' },
    endpoints: [
      { name: 'local', url: 'http://127.0.0.1:4317', headers: { 'x-api-key': SECRET } },
      { name: 'tls', url: 'https://collector.invalid:4317', headers: { 'x-api-key': SECRET } },
      { name: 'tenant', url: 'http://collector.invalid:4317', headers: { 'x-scope-orgid': 'team-a' } },
    ],
  });
  const run = await cli(['check-config', ok]);
  t.equal(run.code, 0, run.stderr);

  const port = await freePort();
  const insecure = writeConfig(dir, 'insecure.yml', {
    listen: `127.0.0.1:${port}`,
    admin: null,
    upstream: { url: 'http://127.0.0.1:1' },
    endpoints: [
      { name: 'lab', url: 'http://collector.invalid:4317', headers: { 'x-api-key': SECRET }, allow_insecure_auth: true },
      { name: 'selfsigned', url: 'https://collector.invalid:4317', tls: { insecure_skip_verify: true } },
    ],
  });
  t.equal((await cli(['check-config', insecure])).code, 0);
  const { startProxyChild, exitOf } = await import('../support/runner-proxy-child.js');
  const proxy = await startProxyChild(insecure);
  t.teardown(async () => {
    proxy.child.kill('SIGKILL');
    await exitOf(proxy, 10_000).catch(() => undefined);
  });
  t.match(
    proxy.lines.find((l) => l.key === 'endpoints[0].allow_insecure_auth'),
    { level: 'warn', endpoint: 'lab' },
    'allow_insecure_auth is logged at start',
  );
  t.match(
    proxy.lines.find((l) => l.key === 'endpoints[1].tls.insecure_skip_verify'),
    { level: 'warn', endpoint: 'selfsigned' },
    "a collector's insecure_skip_verify is logged at start",
  );
  t.notMatch(JSON.stringify(proxy.lines), SECRET, 'no header value in the log');
});

t.test('in-job commands: the same rule, and the job is not failed', async (t) => {
  const plan = planJobExport({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.invalid:4317',
    OTEL_EXPORTER_OTLP_HEADERS: `x-api-key=${SECRET}`,
  });
  t.equal(plan.kind, 'on');
  if (plan.kind !== 'on') return;
  const now = nowNanos();
  const result = await exportJobSpans(
    [
      {
        traceId: newTraceId(),
        spanId: newSpanId(),
        name: 'cmd',
        kind: 1,
        startTimeUnixNano: now,
        endTimeUnixNano: now,
        attributes: {},
        status: { code: 0 },
      },
    ],
    plan,
  );
  t.match(result, { ok: false, reason: /static headers \(x-api-key\) over plaintext/ });
  t.notMatch(JSON.stringify(result), SECRET);

  const allowed = planJobExport({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.invalid:4317',
    OTEL_EXPORTER_OTLP_HEADERS: `x-api-key=${SECRET}`,
    GITLAB_OTEL_ALLOW_INSECURE_AUTH: 'true',
  });
  t.match(allowed, {
    kind: 'on',
    endpoint: { allowInsecureAuth: true },
    notes: [/GITLAB_OTEL_ALLOW_INSECURE_AUTH=true: credentials may go to collector\.invalid:4317 in clear/],
  });
});
