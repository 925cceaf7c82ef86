// admin: /healthz and /metrics on a loopback listener (docs/security.md#deployment, docs/metrics.md#prometheus).
import t, { type Test } from 'tap';
import http from 'node:http';
import { Counter, Registry } from 'prom-client';
import { createAdminServer, listenAdmin, type AdminOptions } from '../../../src/runner-proxy/http/admin.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function get(port: number, path: string, headers: http.OutgoingHttpHeaders = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function start(t: Test, options: Partial<AdminOptions> = {}) {
  const registry = new Registry();
  new Counter({ name: 'test_things_total', help: 'things', registers: [registry] }).inc(3);
  const server = createAdminServer({ registry, health: () => ({ jobs: 2 }), ...options });
  const address = await listenAdmin(server, '127.0.0.1', 0);
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return address.port;
}

t.test('without a token: health details and metrics for anyone', async (t) => {
  const port = await start(t);
  const h = await get(port, '/healthz?x=1');
  t.equal(h.status, 200);
  t.same(JSON.parse(h.body), { status: 'ok', jobs: 2 });
  const m = await get(port, '/metrics');
  t.equal(m.status, 200);
  t.match(m.body, /^test_things_total 3$/m);
  t.equal((await get(port, '/nope')).status, 404);
  const post = await get(port, '/metrics', {}, 'POST');
  t.equal(post.status, 405);
  t.equal(post.headers.allow, 'GET, HEAD');
});

t.test('with a token: bare liveness, details and metrics only with the bearer', async (t) => {
  const port = await start(t, { bearerToken: 's3cret' });
  t.same(JSON.parse((await get(port, '/healthz')).body), { status: 'ok' }, 'liveness without details');
  t.same(JSON.parse((await get(port, '/healthz', { authorization: 'Bearer s3cret' })).body), { status: 'ok', jobs: 2 });
  const denied = await get(port, '/metrics', { authorization: 'Bearer wrong' });
  t.equal(denied.status, 401);
  t.equal(denied.headers['www-authenticate'], 'Bearer');
  t.notMatch(denied.body, /test_things_total/);
  t.equal((await get(port, '/metrics', { authorization: 'Basic s3cret' })).status, 401, 'only the Bearer scheme');
  t.equal((await get(port, '/metrics', { authorization: 'bearer s3cret' })).status, 200, 'the scheme is case-insensitive');
});

t.test('extra metrics are appended; their failure leaves them out', async (t) => {
  const port = await start(t, { extraMetrics: () => Promise.resolve('ci_extra_total 1\n') });
  const m = await get(port, '/metrics');
  t.match(m.body, /test_things_total 3\n[\s\S]*ci_extra_total 1\n$/);
  const port2 = await start(t, { extraMetrics: () => Promise.reject(new Error('reader down')) });
  const m2 = await get(port2, '/metrics');
  t.equal(m2.status, 200, "the proxy's own series are still served");
  t.match(m2.body, /test_things_total 3/);
  t.notMatch(m2.body, /reader down/);
});

t.test('a throwing health callback still answers', async (t) => {
  const port = await start(t, {
    health: () => {
      throw new Error('broken');
    },
  });
  const h = await get(port, '/healthz');
  t.equal(h.status, 200);
  t.match(JSON.parse(h.body), { status: 'ok', health_error: /broken/ });
});
