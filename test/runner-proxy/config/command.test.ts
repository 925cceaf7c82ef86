// config/command: `gitlab-otel check-config FILE…` (exit 0 when all are valid, 2 otherwise).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfigCommand } from '../../../src/runner-proxy/config/command.js';

const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-check-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function run(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = (s: string | Uint8Array) => ((out += String(s)), true);
  process.stderr.write = (s: string | Uint8Array) => ((err += String(s)), true);
  try {
    return { code: checkConfigCommand(argv), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

t.test('valid, invalid and usage', async (t) => {
  const good = file('good.yml', 'upstream: {url: https://gitlab.example.com}\nlisten: 127.0.0.1:8081\n');
  const bad = file('bad.yml', 'upstream: {url: nope}\n');
  const ok = run(['--', good]);
  t.equal(ok.code, 0);
  t.match(ok.out, `${good}: ok (upstream https://gitlab.example.com, listen 127.0.0.1:8081, `);
  const r = run([good, bad]);
  t.equal(r.code, 2, 'one invalid file fails the run');
  t.match(r.out, `${good}: ok`, 'the valid file is still reported');
  t.match(r.err, /upstream.url: not a URL/);
  t.notMatch(r.out, `${bad}: ok`);
  t.equal(run([join(dir, 'missing.yml')]).code, 2);
  const none = run([]);
  t.equal(none.code, 2, 'no file: usage, exit 2');
  t.match(none.err, /Usage: gitlab-otel check-config/);
  t.equal(run(['--help']).code, 0, '--help: usage, exit 0');
});
