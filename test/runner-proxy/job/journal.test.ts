// The job journal: its record format (metadata only, validated field by field
// when read back) and its file (last write wins, torn and corrupt records
// skipped, compaction), on a real directory.
import t from 'tap';
import { appendFileSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobJournal, readJournalledJob, type JournalWarning } from '../../../src/runner-proxy/job/journal.js';
import { frameRecord } from '../../../src/telemetry/export/record-file.js';
import { appendRawPut, sampleRecord } from '../../support/journal-records.js';

t.test('journal records: metadata only, and validated field by field when read back', async (t) => {
  const record = sampleRecord();
  const text = JSON.stringify(record);
  t.notOk(/glcbt-|gitlab-ci-token|password/.test(text), 'no job token, repo_url or credential in the record');
  t.notOk('tracing' in record.job, 'the raw contract fields are not kept');
  t.same(readJournalledJob(JSON.parse(text)), { ok: true, value: record }, 'round trip');

  const broken: [string, (r: Record<string, unknown>) => void, RegExp][] = [
    ['another version', (r) => (r.v = 2), /version 2/],
    ['a bad trace id', (r) => (r.traceId = 'zz'), /traceId/],
    ['a bad span id', (r) => (r.jobSpanId = '0000000000000000'), /jobSpanId/],
    [
      'a CI variable off the allowlist',
      (r) => ((r.job as { ci: Record<string, string> }).ci.DEPLOY_PASSWORD = 'x'),
      /job\.ci\.DEPLOY_PASSWORD/,
    ],
    ['a non-decimal time', (r) => (r.assignedAt = '12e9'), /assignedAt/],
    ['an unknown contract', (r) => (r.contract = 'magic'), /contract/],
    [
      'a malformed open span',
      (r) => ((r.log as { spans: { sections: unknown[] } }).spans.sections = [{ spanId: 'x', startNs: '1' }]),
      /open span/,
    ],
    ['a malformed payload endpoint', (r) => (r.payloadEndpoints = [{ auth: 1 }]), /payloadEndpoints\[0\]/],
    ['no job id', (r) => delete (r.job as Record<string, unknown>).jobId, /jobId/],
  ];
  for (const [what, edit, problem] of broken) {
    const r = JSON.parse(text) as Record<string, unknown>;
    edit(r);
    const read = readJournalledJob(r);
    t.equal(read.ok, false, `rejected: ${what}`);
    if (!read.ok) t.match(read.problem, problem, `the problem names it: ${what}`);
  }
  t.match(readJournalledJob('nope'), { ok: false, problem: /not an object/ });
});

t.test('the journal file: last write per job wins, deletes stick, each record is validated on its own', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-journal-'));
  const j = JobJournal.open(dir);
  j.put('1', sampleRecord({ canceled: false }, 1));
  j.put('2', sampleRecord({}, 2));
  j.put('1', sampleRecord({ canceled: true }, 1));
  j.delete('2');
  j.delete('2');
  j.close();
  t.equal(statSync(join(dir, 'jobs.journal')).mode & 0o777, 0o600, 'owner-only');
  // A record another version wrote: kept on disk, reported unusable by loadAll, the rest unharmed.
  appendRawPut(dir, '3', { v: 9 });
  const reopened = JobJournal.open(dir);
  t.same(reopened.jobs().sort(), ['1', '3']);
  const all = reopened.loadAll();
  t.match(all.get('1'), { ok: true, value: { canceled: true, job: { jobId: 1 } } });
  t.match(all.get('3'), { ok: false, problem: /version 9/ });
  reopened.delete('3');
  reopened.close();
  t.same(JobJournal.open(dir).jobs(), ['1']);
});

t.test('torn and corrupt records are skipped with a warning, never a crash; compaction drops the damage', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-journal-'));
  const j = JobJournal.open(dir);
  j.put('1', sampleRecord({ deadline: 1 }, 1));
  j.put('2', sampleRecord({}, 2));
  j.put('1', sampleRecord({ deadline: 3 }, 1));
  j.delete('2');
  j.put('4', sampleRecord({}, 4));
  j.close();
  const file = join(dir, 'jobs.journal');
  const bytes = readFileSync(file);
  // Corrupt the last record's payload and append a torn half-record, as kill -9 mid-write would.
  bytes.writeUInt8(bytes[bytes.length - 2]! ^ 0x55, bytes.length - 2);
  writeFileSync(file, bytes);
  appendFileSync(file, frameRecord(Buffer.from(JSON.stringify({ t: 'p', job: '5', s: sampleRecord({}, 5) }))).subarray(0, 12));
  const warnings: JournalWarning[] = [];
  const reopened = JobJournal.open(dir, (w) => warnings.push(w));
  t.same(reopened.jobs(), ['1'], 'the corrupt put of 4 is skipped; earlier state intact');
  t.match(reopened.loadAll().get('1'), { ok: true, value: { deadline: 3 } });
  t.match(warnings, [{ event: 'journal_records_skipped', corrupt: 1, torn: true }]);
  reopened.put('6', sampleRecord({}, 6));
  reopened.close();
  const warnings2: JournalWarning[] = [];
  t.same(JobJournal.open(dir, (w) => warnings2.push(w)).jobs(), ['1', '6'], 'compaction dropped the damage');
  t.same(warnings2, [], 'nothing left to skip');
});

t.test('entries that are not journal entries are ignored', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-journal-'));
  const file = join(dir, 'jobs.journal');
  const j = JobJournal.open(dir);
  j.put('1', sampleRecord({}, 1));
  j.close();
  for (const junk of ['not json', '[]', '{"t":"p"}', '{"t":"z","job":"1"}', '{"t":"x","job":7}'])
    appendFileSync(file, frameRecord(Buffer.from(junk)));
  t.same(JobJournal.open(dir).jobs(), ['1']);
});
