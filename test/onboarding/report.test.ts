// The Reporter at the edge: results reach the JSON report as they arrive (a
// killed run leaves every finished project on record), the finished report is
// complete, the Markdown lists a bounded sample, a slow reader holds the
// workers back, and a failing report file never fails the run.
import t from 'tap';
import { mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import type { ProjectResult } from '../../src/onboarding/onboard.js';
import { MARKDOWN_ROWS_PER_STATUS, Reporter } from '../../src/onboarding/report.js';

function created(i: number): ProjectResult {
  return {
    project: `big/p${i}`,
    status: 'created',
    project_id: i,
    issue: { iid: 1, web_url: `https://g/big/p${i}/-/work_items/1` },
    workflow: { id: 1000 + i },
    workload_id: `wl-${i}`,
  };
}
function failed(i: number): ProjectResult {
  return { project: `big/p${i}`, status: 'failed', project_id: i, code: 'FORBIDDEN', reason: `HTTP 403: no ${i}`, error: 'forbidden' };
}
function skipped(i: number): ProjectResult {
  return { project: `big/p${i}`, status: 'skipped', project_id: i, code: 'ARCHIVED', reason: 'archived' };
}

function sink(): PassThrough {
  const s = new PassThrough();
  s.resume();
  return s;
}

// Bounded wait on a promise (every wait on I/O has a timeout).
async function within<T>(p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// The report as a killed run leaves it: every complete line is one result.
function linesSoFar(file: string): ProjectResult[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.replace(/,$/, ''))
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as ProjectResult);
}

t.test('results reach the JSON report as they arrive; the finished report is complete', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  const file = join(dir, 'report.json');
  const reporter = new Reporter({ stdout: sink(), stderr: sink(), reportFile: file });
  const all: ProjectResult[] = [];
  for (let i = 1; i <= 300; i++) {
    const r = i % 3 === 0 ? failed(i) : i % 3 === 1 ? created(i) : skipped(i);
    all.push(r);
    await within(reporter.record(r));
  }
  // Before finish(): read the file as a killed run would leave it, once the stream has flushed (bounded poll).
  let partial = linesSoFar(file);
  for (let tries = 0; partial.length === 0 && tries < 200; tries++) {
    await new Promise<void>((resolve) => setTimeout(resolve, 50));
    partial = linesSoFar(file);
  }
  t.ok(partial.length > 0, `results on disk before the run ended (${partial.length})`);
  t.same(partial, all.slice(0, partial.length), 'each line is one whole result, in order');

  const summary = await within(reporter.finish());
  t.match(summary, { total: 300, created: 100, failed: 100, skipped: 100 });
  const report = JSON.parse(readFileSync(file, 'utf8')) as { results: ProjectResult[]; summary: Record<string, unknown> };
  t.same(report.results, all, 'every result, exactly as recorded');
  t.match(report.summary, {
    total: 300,
    created: 100,
    failed: 100,
    skipped: 100,
    by_reason: { 'failed: FORBIDDEN': 100, 'skipped: ARCHIVED': 100, 'created: CREATED': 100 },
  });
  t.same(linesSoFar(file), all, 'one result per line in the finished file too');
});

t.test(
  'the Markdown lists failed first, at most MARKDOWN_ROWS_PER_STATUS of each, and points at the JSON report for the rest',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'report-'));
    const file = join(dir, 'onboarding.json');
    const reporter = new Reporter({ stdout: sink(), stderr: sink(), reportFile: file });
    const createdCount = MARKDOWN_ROWS_PER_STATUS + 250;
    for (let i = 1; i <= createdCount; i++) await within(reporter.record(created(i)));
    for (let i = 1; i <= 3; i++) await within(reporter.record(failed(createdCount + i)));
    await within(reporter.finish());
    const md = readFileSync(join(dir, 'onboarding.md'), 'utf8');
    t.match(md, new RegExp(`\\| created \\| ${createdCount} \\|`));
    t.ok(md.indexOf('## Failed') < md.indexOf('## Created'), 'failed before created');
    t.equal(md.match(/\| created \| \[#1\]/g)?.length, MARKDOWN_ROWS_PER_STATUS, 'created rows bounded');
    t.equal(md.match(/\| failed \| {2}\|/g)?.length, 3, 'every failed row while under the bound');
    t.match(md, /… and 250 more created projects: see onboarding\.json\./);
    t.notMatch(md, /more failed/);
    t.match(md, /\| big\/p1 \| created \| \[#1\]\(https:\/\/g\/big\/p1\/-\/work_items\/1\) \| 1001 \|/);
    const report = JSON.parse(readFileSync(file, 'utf8')) as { results: ProjectResult[] };
    t.equal(report.results.length, createdCount + 3, 'the JSON report holds them all');
  },
);

t.test('without --report nothing is kept per project', async (t) => {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const reporter = new Reporter({ stdout: out, stderr: sink() });
  for (let i = 1; i <= 50; i++) await within(reporter.record(created(i)));
  t.same((reporter as unknown as { rows: unknown[] }).rows, [], 'no rows without a Markdown summary to write');
  const summary = await within(reporter.finish());
  t.equal(summary.created, 50);
  t.equal(Buffer.concat(chunks).toString('utf8').trim().split('\n').length, 50, 'every result still printed');
});

t.test('a slow reader of stdout holds record() back instead of buffering every result', async (t) => {
  let release: (() => void) | null = null;
  const written: string[] = [];
  const slow = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _enc, callback) {
      written.push(chunk.toString('utf8'));
      release = () => callback();
    },
  });
  const reporter = new Reporter({ stdout: slow, stderr: sink() });
  let settled = false;
  const pending = reporter.record(created(1)).then(() => {
    settled = true;
  });
  await within(new Promise<void>((resolve) => setImmediate(resolve)));
  t.equal(written.length, 1, 'the line was handed to the reader');
  t.notOk(settled, 'record() waits while the reader has not taken it');
  (release as unknown as () => void)();
  await within(pending);
  t.ok(settled, 'and resolves once it has');
});

t.test('a report file that cannot be written is reported, and the run still ends with its summary', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  const file = join(dir, 'report.json');
  symlinkSync('/dev/full', file); // every write fails with ENOSPC
  const err = new PassThrough();
  const errChunks: Buffer[] = [];
  err.on('data', (c: Buffer) => errChunks.push(c));
  const reporter = new Reporter({ stdout: sink(), stderr: err, reportFile: file });
  for (let i = 1; i <= 20; i++) await within(reporter.record(created(i)));
  const summary = await within(reporter.finish());
  t.equal(summary.created, 20);
  const stderr = Buffer.concat(errChunks).toString('utf8');
  t.match(stderr, /writing the report failed: .*ENOSPC/);
  t.match(stderr, /the JSON report '.*report\.json' is incomplete/);
  t.match(stderr, /created\s+20/, 'summary table still printed');
  t.match(readFileSync(join(dir, 'report.md'), 'utf8'), /\| created \| 20 \|/, 'the Markdown summary is still written beside it');
});
