// The proxy bench's bare undici pipe (bench/undici-passthrough-proxy.ts) forwards as the http pipe does:
// request and response bodies streamed whole both ways (fixed length and chunked), status and end-to-end
// headers kept, hop-by-hop fields not sent on. Real processes on loopback: the pipe as the bench starts it,
// an upstream in this process that echoes what it received.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { REPO } from '../support/in-job-harness.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  sha256: string;
  bytes: number;
}

async function upstream(): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
      chunks.push(c);
    });
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, sha256: hash.digest('hex'), bytes });
      // The request body back, in chunks without a length (chunked), with a status and a header of its own.
      res.writeHead(req.method === 'GET' ? 200 : 202, { 'x-upstream': 'yes', 'content-type': 'application/octet-stream' });
      for (const c of chunks) res.write(c);
      res.end(req.method === 'GET' ? 'hello' : undefined);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function startPipe(upstreamUrl: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/undici-passthrough-proxy.ts', upstreamUrl], {
    cwd: REPO,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the undici pipe did not start within 30 s')), 30_000);
    createInterface({ input: child.stderr }).on('line', (line) => {
      const m = /"listen":"127\.0\.0\.1:(\d+)"/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the undici pipe exited with ${code}`));
    });
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function call(url: string, method: string, body: Buffer | undefined, headers: Record<string, string>, chunked = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/api/v4/jobs/7/trace?x=1`, { method, headers, agent: false, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', reject);
    if (body && chunked) {
      // Several writes without a length: Node sends them chunked.
      for (let i = 0; i < body.length; i += 65_536) req.write(body.subarray(i, i + 65_536));
      req.end();
    } else {
      req.end(body);
    }
  });
}

t.test('bodies both ways, fixed length and chunked; status and end-to-end headers kept', async (t) => {
  const up = await upstream();
  const pipe = await startPipe(up.url);
  t.teardown(async () => {
    pipe.child.kill('SIGKILL');
    await up.close();
  });
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  const body = randomBytes(1024 * 1024 + 17);
  const fixed = await call(pipe.url, 'PATCH', body, { 'content-type': 'text/plain', 'content-range': '0-1048592', 'job-token': 'tok' });
  t.equal(fixed.status, 202);
  t.equal(fixed.headers['x-upstream'], 'yes');
  t.equal(sha(fixed.body), sha(body), 'the response body is the request body, whole');
  t.match(up.seen[0], { method: 'PATCH', url: '/api/v4/jobs/7/trace?x=1', sha256: sha(body), bytes: body.length });
  t.equal(up.seen[0]!.headers['content-range'], '0-1048592');
  t.equal(up.seen[0]!.headers['job-token'], 'tok');
  t.equal(up.seen[0]!.headers.host, new URL(up.url).host, 'Host is the upstream');

  const chunked = await call(pipe.url, 'PUT', body, { 'content-type': 'application/json', connection: 'keep-alive' }, true);
  t.equal(chunked.status, 202);
  t.equal(sha(chunked.body), sha(body));
  t.match(up.seen[1], { method: 'PUT', sha256: sha(body), bytes: body.length });
  t.equal(up.seen[1]!.headers['transfer-encoding'], 'chunked', 'a body without a length goes on chunked');

  const get = await call(pipe.url, 'GET', undefined, {});
  t.equal(get.status, 200);
  t.equal(get.body.toString(), 'hello');
  t.match(up.seen[2], { method: 'GET', bytes: 0 });
  t.equal(up.seen[2]!.headers['content-length'], undefined, 'no body framing is invented for a GET');
});

t.test('an unreachable upstream drops the call', async (t) => {
  const up = await upstream();
  const gone = up.url;
  await up.close();
  const pipe = await startPipe(gone);
  t.teardown(() => {
    pipe.child.kill('SIGKILL');
  });
  await t.rejects(call(pipe.url, 'GET', undefined, {}), 'the runner sees the connection end without an answer');
});
