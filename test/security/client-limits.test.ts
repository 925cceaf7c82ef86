// Finding 7 (issue #16): a job container is a client of the proxy and must not
// exhaust its memory or file descriptors, and with them every other job's
// forwarding. Each limit is hit here through the real proxy, counted, and
// shown not to cost the runner its exchanges; a long poll and a slow upload
// that outlast the idle timeout still work (docs/security.md#client-limits).
// Clients are told apart by source address: 127.0.0.2 and up are loopback too.
import t, { type Test } from 'tap';
import http from 'node:http';
import net from 'node:net';
import { envDefaults } from '../../src/runner-proxy/config/load.js';
import { validateConfig } from '../../src/runner-proxy/config/schema.js';
import { startRunnerProxy, type RunningProxy } from '../../src/runner-proxy/runtime.js';
import { silentLogger } from '../../src/log.js';
import { call, metricValue, startUpstream, type Upstream } from './support.js';

async function start(t: Test, limits: Record<string, unknown>, upstream: Upstream): Promise<{ proxy: RunningProxy; base: string }> {
  const config = validateConfig(
    { listen: '127.0.0.1:0', admin: '127.0.0.1:0', upstream: { url: upstream.url }, limits },
    envDefaults({}).defaults,
  );
  const proxy = await startRunnerProxy(config, { log: silentLogger });
  t.teardown(() => proxy.stop());
  return { proxy, base: `http://127.0.0.1:${proxy.address.port}` };
}

const limitHits = async (proxy: RunningProxy, limit: string): Promise<number> =>
  metricValue(await proxy.registry.metrics(), 'gitlab_otel_proxy_limit_hits_total', { limit });

/** A raw connection from `localAddress` to the proxy; resolves once connected. */
function connectFrom(port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
    s.once('error', reject);
  });
}

/** What the proxy says on a connection before any request: '' when it says nothing within `ms`. */
function firstWords(s: net.Socket, ms: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const timer = setTimeout(() => resolve(got), ms);
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('\r\n\r\n')) {
        clearTimeout(timer);
        resolve(got);
      }
    });
    s.on('error', () => undefined);
  });
}

const okUpstream = () =>
  startUpstream((req, _body, res) => {
    res.writeHead(req.method === 'PATCH' ? 202 : 200, { 'Content-Type': 'application/json' }).end('{}');
  });

t.test('connections from one client are capped; the runner on another address is still served', async (t) => {
  const upstream = await okUpstream();
  t.teardown(() => upstream.close());
  const { proxy, base } = await start(t, { max_connections: 100, max_connections_per_client: 5 }, upstream);
  const port = proxy.address.port;
  const held: net.Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  for (let i = 0; i < 5; i++) held.push(await connectFrom(port, '127.0.0.2'));
  const sixth = await connectFrom(port, '127.0.0.2');
  held.push(sixth);
  t.match(await firstWords(sixth, 5000), /^HTTP\/1\.1 503 /, 'the sixth connection from 127.0.0.2 gets 503 and is closed');
  t.equal(await limitHits(proxy, 'client_connections'), 1, 'counted');
  const runner = await call(base, 'PUT', '/api/v4/jobs/1', {
    body: '{"state":"running"}',
    headers: { 'Content-Type': 'application/json' },
  });
  t.equal(runner.status, 200, 'the runner (127.0.0.1) is answered');
});

t.test('all clients together are capped, and connections are admitted again once some close', async (t) => {
  const upstream = await okUpstream();
  t.teardown(() => upstream.close());
  const { proxy, base } = await start(t, { max_connections: 4, max_connections_per_client: 100 }, upstream);
  const port = proxy.address.port;
  const held = [await connectFrom(port, '127.0.0.3'), await connectFrom(port, '127.0.0.4'), await connectFrom(port, '127.0.0.5')];
  held.push(await connectFrom(port, '127.0.0.6'));
  const fifth = await connectFrom(port, '127.0.0.7');
  t.match(await firstWords(fifth, 5000), /^HTTP\/1\.1 503 /, 'over the total: 503');
  t.equal(await limitHits(proxy, 'connections'), 1, 'counted');
  for (const s of held) s.destroy();
  // The proxy sees the closes asynchronously; the next connection is admitted once it has.
  const deadline = Date.now() + 10_000;
  let status = 0;
  while (Date.now() < deadline) {
    status = (await call(base, 'GET', '/api/v4/version', { agent: new http.Agent({ keepAlive: false }) })).status;
    if (status === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(status, 200, 'admitted again after the holders left');
});

t.test('bodies held for telemetry share one budget: past it, exchanges are forwarded whole but not observed', async (t) => {
  const upstream = await okUpstream();
  t.teardown(() => upstream.close());
  const { proxy, base } = await start(t, { max_buffered_bytes: '300KiB' }, upstream);
  const port = proxy.address.port;
  const chunk = Buffer.alloc(120 * 1024, 0x61);
  // Two job updates (held whole up to 256 KiB: their token is inside) each 120 KiB into their
  // bodies; finishing them takes 480 KiB, past the 300 KiB budget.
  const open: http.ClientRequest[] = [];
  t.teardown(() => open.forEach((r) => r.destroy()));
  for (const id of [11, 12]) {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'PUT',
      path: `/api/v4/jobs/${id}`,
      headers: { 'Content-Type': 'application/json', 'Content-Length': String(2 * chunk.length) },
    });
    req.on('error', () => undefined);
    req.write(chunk);
    open.push(req);
  }
  const health = async () =>
    JSON.parse((await call(`http://127.0.0.1:${proxy.adminAddress!.port}`, 'GET', '/healthz')).body.toString()) as {
      telemetry_buffered_bytes: number;
    };
  const held = Date.now() + 10_000;
  while (Date.now() < held && (await health()).telemetry_buffered_bytes < 2 * chunk.length) await new Promise((r) => setTimeout(r, 25));
  t.equal((await health()).telemetry_buffered_bytes, 2 * chunk.length, 'both first halves are held');
  const answers = open.map(
    (req) => new Promise<number>((resolve) => req.on('response', (res) => (res.resume(), resolve(res.statusCode ?? 0)))),
  );
  for (const req of open) req.end(chunk);
  t.same(await Promise.all(answers), [200, 200], 'both updates answered');
  t.equal(await limitHits(proxy, 'buffered_bytes'), 1, 'the second half that did not fit: counted once');
  // Both bodies are still forwarded in full.
  const got = upstream.requests.filter((r) => r.method === 'PUT').map((r) => r.body.length);
  t.same(got, [2 * chunk.length, 2 * chunk.length], 'GitLab got every byte of both');

  // A log upload for a job the proxy does not follow (or without that job's token) is not held at all.
  const patch = await call(base, 'PATCH', '/api/v4/jobs/13/trace', { headers: { 'Content-Range': '0-9' }, body: Buffer.alloc(200 * 1024) });
  t.equal(patch.status, 202);
  t.equal(await limitHits(proxy, 'buffered_bytes'), 1, 'no budget used by it');
  const released = Date.now() + 10_000;
  while (Date.now() < released && (await health()).telemetry_buffered_bytes > 0) await new Promise((r) => setTimeout(r, 25));
  t.equal((await health()).telemetry_buffered_bytes, 0, 'the budget is released when the exchanges end');
});

t.test('idle keep-alive connections are closed; a long poll and a slow upload that outlast the idle timeout still work', async (t) => {
  const upstream = await startUpstream((req, body, res) => {
    if (req.url === '/api/v4/jobs/request') {
      // Workhorse holds a job request until a job comes or its long poll ends.
      setTimeout(() => res.writeHead(204, { 'X-GitLab-Last-Update': 'x' }).end(), 1500);
    } else {
      res.writeHead(201, { 'Content-Type': 'application/json' }).end(JSON.stringify({ size: body.length }));
    }
  });
  t.teardown(() => upstream.close());
  const { proxy, base } = await start(t, { idle_timeout: '500ms' }, upstream);

  const idle = await connectFrom(proxy.address.port, '127.0.0.8');
  const closed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000);
    idle.once('close', () => (clearTimeout(timer), resolve(true)));
  });
  t.ok(closed, 'a connection with no request is closed');
  t.equal(await limitHits(proxy, 'idle_connection'), 1, 'counted');

  const poll = await call(base, 'POST', '/api/v4/jobs/request', { body: '{}', headers: { 'Content-Type': 'application/json' } });
  t.equal(poll.status, 204, 'a 1.5 s long poll through a 500 ms idle timeout is answered');

  const uploaded = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: proxy.address.port,
        method: 'POST',
        path: '/api/v4/jobs/5/artifacts',
        headers: { 'Transfer-Encoding': 'chunked' },
      },
      (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      },
    );
    req.on('error', reject);
    let n = 0;
    const tick = setInterval(() => {
      req.write(Buffer.alloc(1024, 0x62));
      if (++n === 8) {
        clearInterval(tick);
        req.end();
      }
    }, 200);
  });
  t.same(uploaded, { status: 201, body: JSON.stringify({ size: 8 * 1024 }) }, 'a 1.6 s upload in 200 ms chunks goes through whole');
});
