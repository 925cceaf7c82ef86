// Finding 6 (issue #16): spool segments were created 0644 under umask 022.
// Every file the proxy writes is 0600 whatever the umask; a spool directory
// handed over looser (a Kubernetes emptyDir is 0777) is tightened to 0700 at
// start, and refused with a clear error only when it cannot be
// (docs/security.md#files). The job token is in none of the files.
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLab, runLabJob } from '../../src/lab/lab.js';
import { journalEndpoint } from '../../src/runner-proxy/job/tracked-job.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

function walk(dir: string): { path: string; dir: boolean; mode: number }[] {
  const out = [{ path: dir, dir: true, mode: statSync(dir).mode & 0o777 }];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else out.push({ path: p, dir: false, mode: statSync(p).mode & 0o777 });
  }
  return out;
}

t.test('under umask 022, with an emptyDir-like 0777 spool: every directory 0700, every file 0600, no job token on disk', async (t) => {
  const previous = process.umask(0o022);
  t.teardown(() => process.umask(previous));
  const root = mkdtempSync(join(tmpdir(), 'gitlab-otel-modes-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const spool = join(root, 'spool');
  mkdirSync(join(spool, 'journal'), { recursive: true });
  chmodSync(spool, 0o777);
  chmodSync(join(spool, 'journal'), 0o777);
  writeFileSync(join(spool, 'journal', 'jobs.journal.tmp'), '');
  chmodSync(join(spool, 'journal', 'jobs.journal.tmp'), 0o644);

  const lab = await startLab({ proxyConfig: { spool: { dir: spool } } });
  t.teardown(() => lab.stop());
  const token = 'glcbt-CANARYfilemodes0001';
  const snapshots: string[] = [];
  await runLabJob(lab, lab.runner(), {
    payload: { id: 6001, token, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
    scenario: 'user-sections',
    patchSizes: [400, 400, 400, 400],
    // Mid-job, the journal holds the job's record.
    beforePatch: () => {
      snapshots.push(
        walk(spool)
          .filter((f) => !f.dir)
          .map((f) => readFileSync(f.path, 'latin1'))
          .join('\n'),
      );
    },
  });
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  await lab.proxy.pipeline.flush(2000);

  const entries = walk(spool);
  t.ok(
    entries.some((e) => !e.dir && e.path.endsWith('.log')),
    'spool segments were written',
  );
  t.ok(
    entries.some((e) => !e.dir && e.path.endsWith('jobs.journal')),
    'the journal was written',
  );
  for (const e of entries) t.equal(e.mode.toString(8), e.dir ? '700' : '600', `${e.path.slice(root.length)} is ${e.dir ? '0700' : '0600'}`);
  t.ok(
    snapshots.some((s) => s.includes('6001')),
    'a mid-job snapshot has the journalled job',
  );
  const onDisk = snapshots.join('\n') + entries.map((e) => (e.dir ? '' : readFileSync(e.path, 'latin1'))).join('\n');
  t.notOk(onDisk.includes(token), 'the job token is in no spool or journal file, during or after the job');
});

t.test('the journal keeps only the fields it knows of a payload endpoint', async (t) => {
  const received = {
    url: 'https://user:pass@otel.example.com:4318/v1/traces?token=secret#frag',
    auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'https://otel.example.com', extra: 'x' }, more: 'y' },
    headers: { authorization: 'Bearer secret' },
  } as unknown as Parameters<typeof journalEndpoint>[0];
  t.same(journalEndpoint(received), {
    url: 'https://otel.example.com:4318/v1/traces',
    auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'https://otel.example.com' } },
  });
  t.same(journalEndpoint({ url: 'grpc://collector:4317' }), { url: 'grpc://collector:4317' });
});
