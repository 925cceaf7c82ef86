// runtime: the composition root started from a configuration, on loopback listeners, and stopped.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/runner-proxy/config/load.js';
import { startRunnerProxy } from '../../src/runner-proxy/runtime.js';
import type { LogFields, LogLevel } from '../../src/log.js';

const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-runtime-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 10_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

t.test('starts the proxy and the admin listener from the configuration, stops both', async (t) => {
  const gitlab = http.createServer((_req, res) => res.writeHead(200).end('gitlab'));
  await new Promise<void>((r) => gitlab.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => gitlab.close(() => r())));
  const file = join(dir, 'proxy.yml');
  writeFileSync(
    file,
    JSON.stringify({
      listen: '127.0.0.1:0',
      admin: '127.0.0.1:0',
      upstream: { url: `http://127.0.0.1:${(gitlab.address() as AddressInfo).port}`, insecure_skip_verify: true },
      shutdown: { grace: '1s', flush_timeout: '1s' },
    }),
  );
  const { config } = loadConfig(file, {});
  const logs: { level: LogLevel; msg: string; fields?: LogFields }[] = [];
  const running = await startRunnerProxy(config, { log: (level, msg, fields) => logs.push({ level, msg, fields }) });
  let stopped = false;
  t.teardown(() => (stopped ? undefined : running.stop()));

  t.equal(running.address.address, '127.0.0.1');
  t.ok(running.adminAddress, 'admin listener started');
  t.same(await get(running.address.port, '/api/v4/projects/1'), { status: 200, body: 'gitlab' }, 'forwards to GitLab');
  t.equal((await get(running.adminAddress!.port, '/healthz')).status, 200);
  const metrics = (await get(running.adminAddress!.port, '/metrics')).body;
  t.match(metrics, /gitlab_otel_proxy_requests_total\{route="other",status="200"\} 1/, "the proxy's metrics on the admin listener");
  t.match(
    logs.find((l) => /TLS verification to GitLab is disabled/.test(l.msg)),
    { level: 'warn' },
    'a disabled verification is logged',
  );
  t.ok(
    logs.some((l) => l.msg === 'runner proxy listening'),
    'listening is logged',
  );

  await running.stop();
  stopped = true;
  t.ok(
    logs.some((l) => l.msg === 'runner proxy stopped'),
    'stop is logged',
  );
  await t.rejects(get(running.address.port, '/'), { code: 'ECONNREFUSED' }, 'the runner listener is closed');
  await t.rejects(get(running.adminAddress!.port, '/healthz'), { code: 'ECONNREFUSED' }, 'the admin listener is closed');
});
