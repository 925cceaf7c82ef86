// server: the runner-facing forwarding path, without telemetry (no observer), between a
// loopback client and a loopback GitLab; and the shared buffer budget (docs/security.md#client-limits).
import t, { type Test } from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { BufferBudget, RunnerProxy, type RunnerProxyOptions } from '../../../src/runner-proxy/http/server.js';
import { createProxyMetrics } from '../../../src/runner-proxy/metrics.js';

interface Seen {
  method?: string;
  url?: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A loopback GitLab that records each request and answers 200 with a fixed body. */
async function upstream(t: Test): Promise<{ url: URL; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { 'content-type': 'text/plain', 'x-from': 'gitlab' }).end('from gitlab');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`), seen };
}

async function proxy(t: Test, url: URL, more: Partial<RunnerProxyOptions> = {}): Promise<{ port: number; registry: Registry }> {
  const registry = new Registry();
  const p = new RunnerProxy({
    upstream: { url, insecureSkipVerify: false, headersTimeoutMs: 10_000 },
    maxPayloadBytes: 1024 * 1024,
    metrics: createProxyMetrics(registry),
    log: () => {},
    ...more,
  });
  const { port } = await p.listen(0, '127.0.0.1');
  t.teardown(() => p.close(1000));
  return { port, registry };
}

function send(port: number, method: string, path: string, body?: string, headers: http.OutgoingHttpHeaders = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, timeout: 10_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

async function value(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = await registry.getSingleMetric(name)!.get();
  return m.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
}

t.test('BufferBudget reserves within its maximum and reports refusals', async (t) => {
  let refused = 0;
  const b = new BufferBudget(10, () => refused++);
  t.ok(b.reserve(6));
  t.ok(b.reserve(4), 'up to the maximum exactly');
  t.notOk(b.reserve(1), 'over it: refused');
  t.equal(refused, 1);
  t.equal(b.used, 10, 'a refused reservation takes nothing');
  b.release(7);
  t.equal(b.used, 3);
  b.release(100);
  t.equal(b.used, 0, 'never below zero');
});

t.test('forwards method, path, query, headers and body; answers with GitLab’s response', async (t) => {
  const gitlab = await upstream(t);
  const { port, registry } = await proxy(t, gitlab.url);
  const r = await send(port, 'POST', '/api/v4/runners/verify?x=1', '{"token":"glrt-x"}', {
    'content-type': 'application/json',
    'x-custom': 'kept',
  });
  t.equal(r.status, 200);
  t.equal(r.body, 'from gitlab');
  t.equal(r.headers['x-from'], 'gitlab');
  t.match(gitlab.seen, [
    { method: 'POST', url: '/api/v4/runners/verify?x=1', body: '{"token":"glrt-x"}', headers: { 'x-custom': 'kept' } },
  ]);
  t.equal(await value(registry, 'gitlab_otel_proxy_requests_total', { route: 'runners', status: '200' }), 1);
});

t.test('GitLab unreachable: 502 to the runner, counted', async (t) => {
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const url = new URL(`http://127.0.0.1:${(closed.address() as AddressInfo).port}`);
  await new Promise<void>((r) => closed.close(() => r()));
  const { port, registry } = await proxy(t, url);
  const r = await send(port, 'GET', '/api/v4/projects/1');
  t.equal(r.status, 502);
  const m = await registry.getSingleMetric('gitlab_otel_upstream_errors_total')!.get();
  t.equal(m.values.find((v) => v.labels.route === 'other')?.value, 1);
});

t.test('Job Router discovery: declined with 501 by default, forwarded with pass', async (t) => {
  const gitlab = await upstream(t);
  const declined = await proxy(t, gitlab.url);
  const r = await send(declined.port, 'GET', '/api/v4/runners/router/discovery');
  t.equal(r.status, 501);
  t.equal(gitlab.seen.length, 0, 'GitLab never saw it');
  t.equal((await declined.registry.getSingleMetric('gitlab_otel_router_discovery_declined_total')!.get()).values[0]?.value, 1);
  const passed = await proxy(t, gitlab.url, { jobRouter: 'pass' });
  t.equal((await send(passed.port, 'GET', '/api/v4/runners/router/discovery')).status, 200);
  t.equal(gitlab.seen.length, 1);
});
