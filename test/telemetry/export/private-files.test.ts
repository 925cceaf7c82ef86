// export/private-files.ts: the spool directory made owner-only whatever the
// umask and whatever mode it was handed over in (docs/security.md#files).
// Real files in a temporary directory.
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, PrivateDirError, securePrivateDir } from '../../../src/telemetry/export/private-files.js';

const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

t.test('creates the directory 0700 under a permissive umask', async (t) => {
  const previous = process.umask(0o000);
  t.teardown(() => process.umask(previous));
  const root = mkdtempSync(join(tmpdir(), 'gitlab-otel-private-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'a', 'spool');
  securePrivateDir(dir);
  t.equal(mode(dir), PRIVATE_DIR_MODE.toString(8));
});

t.test('tightens a loose tree: directories 0700 and files 0600 three directory levels down; what lies deeper is left alone', async (t) => {
  // The proxy's own layout is two levels (spool/journal/jobs.journal, spool/<endpoint>/seg-*.log).
  const root = mkdtempSync(join(tmpdir(), 'gitlab-otel-private-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const spool = join(root, 'spool');
  const l1 = join(spool, 'endpoints');
  const l2 = join(l1, 'abc');
  const l3 = join(l2, 'sub');
  mkdirSync(join(l3, 'deeper'), { recursive: true });
  const files = [join(spool, 'top.log'), join(l1, 'e.log'), join(l2, 'seg.log')];
  const beyond = [join(l3, 'x.log'), join(l3, 'deeper', 'y.log')];
  for (const f of [...files, ...beyond]) writeFileSync(f, 'x');
  for (const d of [spool, l1, l2, l3, join(l3, 'deeper')]) chmodSync(d, 0o777);
  for (const f of [...files, ...beyond]) chmodSync(f, 0o644);

  securePrivateDir(spool);
  for (const d of [spool, l1, l2, l3]) t.equal(mode(d), PRIVATE_DIR_MODE.toString(8), d.slice(root.length));
  for (const f of files) t.equal(mode(f), PRIVATE_FILE_MODE.toString(8), f.slice(root.length));
  t.equal(mode(join(l3, 'deeper')), '777', 'below the third level nothing is walked');
  for (const f of beyond) t.equal(mode(f), '644', f.slice(root.length));
  securePrivateDir(spool);
  t.equal(mode(spool), '700', 'idempotent');
});

// Moved from test/security/file-modes.test.ts: it exercises this module alone.
t.test('a spool directory whose mode cannot be tightened is refused with a clear error', async (t) => {
  if (process.getuid?.() === 0) {
    t.pass('refusal', { skip: 'running as root: every chmod succeeds, so there is no directory the proxy cannot tighten' });
    return;
  }
  // /tmp belongs to root and is 1777: an unprivileged proxy cannot make it 0700.
  t.throws(() => securePrivateDir('/tmp'), PrivateDirError);
  t.throws(() => securePrivateDir('/tmp'), { code: 'SPOOL_DIR_INSECURE', message: /\/tmp is mode 1777|\/tmp is mode 0777/ });
});
