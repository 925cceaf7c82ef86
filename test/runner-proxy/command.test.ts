// `gitlab-otel runner-proxy`: arguments, configuration errors, and a stop on a signal.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runnerProxyCommand } from '../../src/runner-proxy/command.js';
import { exitOf, freePort, startProxyChild, writeConfig } from '../support/runner-proxy-child.js';

const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-runner-proxy-command-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = (s: string | Uint8Array) => ((out += String(s)), true);
  process.stderr.write = (s: string | Uint8Array) => ((err += String(s)), true);
  try {
    return { code: await runnerProxyCommand(argv), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

t.test('help, unknown options and a bad configuration never start the proxy', async (t) => {
  const help = await capture(['--help']);
  t.equal(help.code, 0);
  t.match(help.out, /^Usage: gitlab-otel runner-proxy/);
  const bogus = await capture(['--bogus']);
  t.equal(bogus.code, 2);
  t.match(bogus.err, /gitlab-otel runner-proxy: .*--bogus[\s\S]*Usage:/);
  const bad = await capture(['--config', writeConfig(dir, 'bad.yml', { upstream: { url: 'nope' } })]);
  t.equal(bad.code, 2);
  t.match(bad.err, /invalid configuration\n[\s\S]*upstream.url: not a URL/);
  const flag = await capture([
    '--config',
    writeConfig(dir, 'flag.yml', { upstream: { url: 'https://gitlab.example.com' } }),
    '--listen',
    'x',
  ]);
  t.equal(flag.code, 2, 'a bad --listen is a configuration error too');
  t.match(flag.err, /listen/);
});

t.test('the proxy runs until SIGINT and then exits 0', async (t) => {
  // GitLab here is a loopback server that answers every request; only the stop is under test.
  const gitlab = http.createServer((_req, res) => res.writeHead(204).end());
  await new Promise<void>((r) => gitlab.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => gitlab.close(() => r())));
  const port = await freePort();
  const config = writeConfig(dir, 'proxy.yml', {
    listen: `127.0.0.1:${port}`,
    admin: null,
    upstream: { url: `http://127.0.0.1:${(gitlab.address() as { port: number }).port}` },
    shutdown: { grace: '1s', flush_timeout: '1s' },
  });
  const proxy = await startProxyChild(config);
  t.teardown(() => {
    if (proxy.child.exitCode === null) proxy.child.kill('SIGKILL');
  });
  const status = await new Promise<number>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/api/v4/runners/verify', timeout: 10_000 }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      })
      .on('error', reject)
      .on('timeout', () => reject(new Error('timeout')));
  });
  t.equal(status, 204, 'forwarding while running');
  proxy.child.kill('SIGINT');
  t.same(await exitOf(proxy, 15_000), { code: 0, signal: null }, 'exit 0 after the stop');
  t.match(
    proxy.lines.find((l) => l.msg === 'stopping'),
    { level: 'info', signal: 'SIGINT' },
  );
  // Started without a semi-space bound (the test's NODE_OPTIONS holds at most tap's hook): said once, at start.
  t.equal(proxy.lines.filter((l) => l.code === 'YOUNG_GENERATION_DEFAULT').length, 1, 'the young-generation hint, once');
  t.match(
    proxy.lines.find((l) => l.code === 'YOUNG_GENERATION_DEFAULT'),
    { level: 'info', msg: /NODE_OPTIONS=--max-semi-space-size=8/, docs: 'docs/performance.md#garbage-collection' },
  );
});

t.test('started as the shipped unit starts it, the proxy gives no young-generation hint', async (t) => {
  const port = await freePort();
  const config = writeConfig(dir, 'bounded.yml', {
    listen: `127.0.0.1:${port}`,
    admin: null,
    upstream: { url: 'http://127.0.0.1:9' },
    shutdown: { grace: '1s', flush_timeout: '1s' },
  });
  const proxy = await startProxyChild(config, 30_000, ['--max-semi-space-size=8']);
  t.teardown(() => {
    if (proxy.child.exitCode === null) proxy.child.kill('SIGKILL');
  });
  proxy.child.kill('SIGTERM');
  t.same(await exitOf(proxy, 15_000), { code: 0, signal: null });
  t.ok(
    proxy.lines.some((l) => typeof l.listen === 'string'),
    'it started (its listen line was read)',
  );
  t.notOk(
    proxy.lines.some((l) => l.code === 'YOUNG_GENERATION_DEFAULT'),
    'no hint',
  );
});
