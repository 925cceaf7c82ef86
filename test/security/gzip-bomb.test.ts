// Finding 2 (issue #16): a gzip bomb in a job payload. 255 KiB of gzip used to
// take the proxy to 835 MiB and stall its event loop for seconds. Now the
// decoded size is bounded by max_payload_bytes, decoding runs off the event
// loop, and the payload goes to the runner as received, without telemetry.
// The event-loop delay is measured in bench/security.ts, not asserted here.
import t from 'tap';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { spawn } from 'node:child_process';
import { exitOf, freePort, writeConfig, type ProxyChild } from '../support/runner-proxy-child.js';
import { CLI_ENTRY } from '../support/child-node.js';
import { call, metricValue, peakRssBytes, startUpstream } from './support.js';

const MiB = 1024 * 1024;

/** `decodedBytes` of spaces after a JSON opening, gzip-compressed chunk by chunk (never held decoded). */
export async function gzipBomb(decodedBytes: number): Promise<Buffer> {
  const gz = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gz.on('data', (c: Buffer) => out.push(c));
  const done = new Promise<void>((resolve, reject) => {
    gz.on('end', resolve);
    gz.on('error', reject);
  });
  gz.write('{"id":7,"token":"bomb","variables":[');
  const chunk = Buffer.alloc(MiB, 0x20);
  for (let n = 0; n < decodedBytes; n += MiB) {
    if (!gz.write(chunk)) await new Promise((r) => gz.once('drain', r));
  }
  gz.end(']}');
  await done;
  return Buffer.concat(out);
}

/**
 * The proxy CLI in a child whose resident set is the proxy's: loaded with tsx
 * (a compiler in another process), not with the test loader, which keeps the
 * TypeScript compiler in the child's own heap (test/support/child-node.ts).
 * Without NODE_OPTIONS, so tap's coverage hook stays out of it too.
 */
async function startLeanProxy(configFile: string): Promise<ProxyChild> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_') && k !== 'NODE_OPTIONS'));
  const child = spawn(process.execPath, ['--import', 'tsx', CLI_ENTRY, 'runner-proxy', '--config', configFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env,
  });
  const lines: Record<string, unknown>[] = [];
  let buffered = '';
  const listening = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the proxy did not listen within 30 s')), 30_000);
    child.once('exit', () => reject(new Error(`the proxy exited: ${JSON.stringify(lines.slice(-3))}`)));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const text = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          lines.push(JSON.parse(text) as Record<string, unknown>);
        } catch {
          lines.push({ level: 'raw', msg: text });
        }
        if (lines.at(-1)!.msg === 'runner proxy listening') {
          clearTimeout(timer);
          resolve();
        }
      }
    });
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  await listening;
  return { child, lines, exited, waitForLog: () => Promise.reject(new Error('not used')) };
}

t.test('a gzip bomb payload: forwarded as received, proxy RSS stays under 150 MB, another job keeps being answered', async (t) => {
  const bomb = await gzipBomb(512 * MiB);
  t.ok(bomb.length < 1024 * 1024, `the bomb is small on the wire (${bomb.length} bytes)`);
  const upstream = await startUpstream((req, _body, res) => {
    if (req.method === 'POST' && req.url === '/api/v4/jobs/request') {
      res.writeHead(201, { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'Content-Length': bomb.length });
      res.end(bomb);
    } else if (req.method === 'PATCH' && req.url === '/api/v4/jobs/2/trace') {
      res.writeHead(202, { Range: '0-10', 'Content-Length': 0 }).end();
    } else {
      res.writeHead(404, { 'Content-Length': 0 }).end();
    }
  });
  t.teardown(() => upstream.close());
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-bomb-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [port, adminPort] = [await freePort(), await freePort()];
  const proxy = await startLeanProxy(
    writeConfig(dir, 'proxy.yml', {
      listen: `127.0.0.1:${port}`,
      admin: `127.0.0.1:${adminPort}`,
      upstream: { url: upstream.url },
      telemetry: { max_payload_bytes: '16MiB' },
    }),
  );
  t.teardown(async () => {
    proxy.child.kill('SIGKILL');
    await exitOf(proxy, 10_000).catch(() => undefined);
  });
  const base = `http://127.0.0.1:${port}`;

  // The neighbour job's log uploads, one after another, while the bomb is handled.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  let bombDone = false;
  const patchStatuses: number[] = [];
  const neighbour = (async () => {
    while (!bombDone) {
      const r = await call(base, 'PATCH', '/api/v4/jobs/2/trace', {
        agent,
        headers: { 'Content-Range': '0-10', 'Content-Type': 'text/plain', 'JOB-TOKEN': 'neighbour' },
        body: 'hello world',
      });
      patchStatuses.push(r.status);
    }
  })();

  const reply = await call(base, 'POST', '/api/v4/jobs/request', {
    headers: { 'Content-Type': 'application/json', 'Accept-Encoding': 'gzip' },
    body: JSON.stringify({ token: 'glrt-x', info: { features: {} } }),
    timeoutMs: 30_000,
  });
  bombDone = true;
  await neighbour;

  t.equal(reply.status, 201);
  t.equal(reply.headers['content-encoding'], 'gzip');
  t.equal(
    createHash('sha256').update(reply.body).digest('hex'),
    createHash('sha256').update(bomb).digest('hex'),
    "the runner got GitLab's bytes unchanged",
  );
  t.ok(patchStatuses.length > 0, `the neighbour's PATCHes went on (${patchStatuses.length})`);
  t.same(
    patchStatuses.filter((s) => s !== 202),
    [],
    "every neighbour PATCH got GitLab's 202",
  );
  t.ok(
    proxy.lines.some((l) => l.msg === 'decoded job payload larger than max_payload_bytes; forwarded without telemetry'),
    'the bound is logged',
  );
  const metrics = await call(`http://127.0.0.1:${adminPort}`, 'GET', '/metrics');
  t.equal(metricValue(metrics.body.toString(), 'gitlab_otel_proxy_limit_hits_total', { limit: 'payload_bytes' }), 1, 'and counted');
  const health = await call(`http://127.0.0.1:${adminPort}`, 'GET', '/healthz');
  t.equal(health.status, 200, 'the proxy is alive');

  const peak = peakRssBytes(proxy.child.pid!);
  if (peak === undefined) t.pass('proxy peak RSS under 150 MB', { skip: 'peak RSS needs /proc (Linux)' });
  else t.ok(peak < 150 * 1000 * 1000, `proxy peak RSS ${(peak / MiB).toFixed(1)} MiB is under 150 MB`);
});
