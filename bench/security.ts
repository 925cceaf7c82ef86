// Issue #16, the gzip bomb in a job payload: what decoding it costs the proxy
// while it keeps forwarding. The proxy runs in this process (startRunnerProxy,
// as in production) in front of a minimal upstream on loopback; a 512 MiB
// bomb (about 0.5 MB on the wire) is requested while a neighbour job PATCHes
// its log without pause. Figures: the event loop's longest delay and the
// resident-set growth during the bomb, each beside the same measurement for an
// ordinary gzip payload; the neighbour's longest PATCH round trip. The test
// (test/security/gzip-bomb.test.ts) asserts the outcome; the timings are here.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createGzip, gzipSync } from 'node:zlib';
import { envDefaults } from '../src/runner-proxy/config/load.js';
import { validateConfig } from '../src/runner-proxy/config/schema.js';
import { startRunnerProxy } from '../src/runner-proxy/runtime.js';
import { silentLogger } from '../src/log.js';
import type { BenchFigure, BenchModule } from './types.js';

const MiB = 1024 * 1024;

async function gzipBomb(decodedBytes: number): Promise<Buffer> {
  const gz = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gz.on('data', (c: Buffer) => out.push(c));
  const done = new Promise<void>((resolve) => gz.on('end', resolve));
  gz.write('{"id":7,"token":"bomb","variables":[');
  const chunk = Buffer.alloc(MiB, 0x20);
  for (let n = 0; n < decodedBytes; n += MiB) if (!gz.write(chunk)) await new Promise((r) => gz.once('drain', r));
  gz.end(']}');
  await done;
  return Buffer.concat(out);
}

/** An ordinary job payload of about `bytes` decoded: variables, as GitLab sends them. */
function ordinaryPayload(bytes: number): Buffer {
  const variables = [];
  for (let i = 0; variables.length * 120 < bytes; i++)
    variables.push({ key: `VAR_${i}`, value: 'v'.repeat(80), public: true, masked: false });
  return gzipSync(JSON.stringify({ id: 8, token: 'glcbt-x', variables, features: { trace_sections: true } }));
}

function request(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string,
  agent?: http.Agent,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface Run {
  maxDelayMs: number;
  rssGrowthMB: number;
  maxPatchMs: number;
  patches: number;
}

async function measure(payload: Buffer): Promise<Run> {
  const upstream = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/api/v4/jobs/request') {
        res
          .writeHead(201, { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'Content-Length': payload.length })
          .end(payload);
      } else res.writeHead(202, { Range: '0-10', 'Content-Length': 0 }).end();
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const config = validateConfig(
    { listen: '127.0.0.1:0', admin: null, upstream: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` } },
    envDefaults({}).defaults,
  );
  const proxy = await startRunnerProxy(config, { log: silentLogger });
  const port = proxy.address.port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  // Warm both paths once, then measure from a settled heap.
  await request(port, 'POST', '/api/v4/jobs/request', { 'Content-Type': 'application/json' }, '{}');
  await request(port, 'PATCH', '/api/v4/jobs/2/trace', { 'Content-Range': '0-10' }, 'hello world', agent);
  global.gc?.();
  const rssBefore = process.memoryUsage.rss();
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 5);
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  let done = false;
  let maxPatchMs = 0;
  let patches = 0;
  const neighbour = (async () => {
    while (!done) {
      const t0 = performance.now();
      await request(port, 'PATCH', '/api/v4/jobs/2/trace', { 'Content-Range': '0-10' }, 'hello world', agent);
      maxPatchMs = Math.max(maxPatchMs, performance.now() - t0);
      patches++;
    }
  })();
  await request(port, 'POST', '/api/v4/jobs/request', { 'Content-Type': 'application/json', 'Accept-Encoding': 'gzip' }, '{}');
  done = true;
  await neighbour;
  delay.disable();
  clearInterval(sampler);
  agent.destroy();
  await proxy.stop();
  await new Promise<void>((r) => upstream.close(() => r()));
  return { maxDelayMs: delay.max / 1e6, rssGrowthMB: (rssPeak - rssBefore) / 1e6, maxPatchMs, patches };
}

const security: BenchModule = async ({ quick, log, method }) => {
  const bomb = await gzipBomb((quick ? 128 : 512) * MiB);
  const ordinary = ordinaryPayload(2 * MiB);
  log(`bomb ${bomb.length} bytes on the wire; ordinary payload ${ordinary.length} bytes`);
  const rounds = quick ? 1 : 3;
  const worst = (runs: Run[], k: keyof Run) => Math.max(...runs.map((r) => r[k]));
  const bombs: Run[] = [];
  const plain: Run[] = [];
  for (let i = 0; i < rounds; i++) {
    plain.push(await measure(ordinary));
    bombs.push(await measure(bomb));
  }
  method?.(
    `security: proxy in-process at its defaults (max_payload_bytes 16 MiB); ${rounds} round(s), worst of each; a ${quick ? 128 : 512} MiB ` +
      `gzip bomb vs an ordinary 2 MiB payload, a neighbour PATCHing back to back meanwhile`,
  );
  const figures: BenchFigure[] = [
    {
      suite: 'security',
      name: 'gzip bomb: longest event-loop delay',
      value: worst(bombs, 'maxDelayMs'),
      unit: 'ms',
      baseline: worst(plain, 'maxDelayMs'),
      note: 'baseline: an ordinary 2 MiB gzip payload',
    },
    {
      suite: 'security',
      name: 'gzip bomb: resident-set growth',
      value: worst(bombs, 'rssGrowthMB'),
      unit: 'MB',
      baseline: worst(plain, 'rssGrowthMB'),
      target: '< 150 MB proxy RSS (the test asserts the child process)',
    },
    {
      suite: 'security',
      name: "gzip bomb: neighbour's longest PATCH round trip",
      value: worst(bombs, 'maxPatchMs'),
      unit: 'ms',
      baseline: worst(plain, 'maxPatchMs'),
      note: `${Math.min(...bombs.map((r) => r.patches))} PATCHes or more answered during each bomb`,
    },
  ];
  for (const f of figures) if (f.baseline) f.ratio = f.value / f.baseline;
  return figures;
};

export default security;
