// The lab's job log builder (src/lab/job-log-builder.ts). Its log writer is a
// port of the runner's timestamper: given the writes
// of gitlab-runner's own timestamper tests, it must write their expected bytes
// exactly (test/fixtures-upstream/gitlab-runner/SOURCE.md,
// docs/job-log.md#timestamped-entries).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { buildJobLog, JOB_LOG_SCENARIOS, RunnerLogWriter, STAMPER_BUFFER_BYTES } from '../../src/lab/job-log-builder.js';

const FIXTURES = new URL('../fixtures-upstream/gitlab-runner/', import.meta.url);
const HOUR_MS = 3_600_000;

/** timestamper_test.go setupDummyTime: 2021-01-01T00:00:00.020010Z, one hour later on every `now()`. */
function writer(timestamps = true): RunnerLogWriter {
  const w = new RunnerLogWriter(BigInt(Date.parse('2021-01-01T00:00:00.020Z')) * 1_000_000n + 10_000n, timestamps, 1 << 30, []);
  w.beforeStamp = () => w.advance(HOUR_MS);
  return w;
}

t.test('TestWithTimestamps: the same writes give the same bytes', async (t) => {
  const w = writer();
  // timestamper_test.go writeLines, stream 255, stderr
  const write = (s: string) => w.write(255, s, 'E');
  write('PREFIX This is the beginning of a new line\n');
  write('PREFIX This is a split ');
  write('up ');
  write('line\n');
  write('PREFIX Progress bar: ');
  for (let i = 0; i < 10; i++) write('.\r');
  write('Done.\r\n');
  write('PREFIX Another windows new-line\r\n');
  write('PREFIX multiple\nnew\nlines\nin\none\n');
  write('\nstart');
  write('\nend\n');
  write('PREFIX Eat carriages\r\r\r\r\r\r\r\n');
  write('PREFIX This is across\ntwo lines\n');
  write('PREFIX The end');
  t.ok(w.bytes().equals(readFileSync(new URL('timestamper-with-timestamps.trace', FIXTURES))));
});

t.test('TestForcedFlush: a line past the 8 KiB buffer is cut into continuation entries', async (t) => {
  const w = writer();
  const write = (s: string) => w.write(255, s, 'E');
  write('PREFIX This is the beginning of a new line\n');
  write('We have no new line character in this write');
  write('... The line is now flushed.\n');
  write('large continuous write incoming');
  write('.'.repeat(STAMPER_BUFFER_BYTES));
  write('.'.repeat(STAMPER_BUFFER_BYTES + 1));
  write('ended\n');
  t.ok(w.bytes().equals(readFileSync(new URL('timestamper-forced-flush.trace', FIXTURES))));
});

t.test('TestCarriageReturnDoesNotSplitWrite: a marker write is one entry, the next one continues it', async (t) => {
  const w = writer();
  w.write(1, 'section_start:123:foo\r\x1b[0K');
  w.write(1, 'section_end:123:foo\r\x1b[0K');
  t.ok(w.bytes().equals(readFileSync(new URL('timestamper-carriage-return.trace', FIXTURES))));
});

// ------------------------------------------------------------ buildJobLog

const START = new Date('2026-03-01T10:00:00Z');
const count = (text: string, marker: string): number => text.split(marker).length - 1;

t.test('buildJobLog: every scenario, both modes: deterministic, one expected section per marker, the secret masked', async (t) => {
  for (const scenario of JOB_LOG_SCENARIOS) {
    for (const timestamps of [true, false]) {
      const what = `${scenario}${timestamps ? ' (FF_TIMESTAMPS)' : ''}`;
      const log = buildJobLog(scenario, { start: START, timestamps });
      t.ok(log.bytes.equals(buildJobLog(scenario, { start: START, timestamps }).bytes), `${what}: the same options give the same bytes`);
      const text = log.bytes.toString('latin1');
      t.equal(count(text, 'section_start:'), log.sections.length, `${what}: one expected section per start marker`);
      const ended = log.sections.filter((s) => s.endNs !== undefined);
      t.equal(count(text, 'section_end:'), ended.length, `${what}: one end marker per ended section`);
      t.ok(
        log.sections.every((s) => (s.endNs === undefined ? s.truncated : s.endNs >= s.startNs && !s.truncated)),
        `${what}: sections end after they start, or are truncated`,
      );
      t.notOk(text.includes(log.secrets[1]!), `${what}: the masked secret is not in the log`);
      t.equal(text.includes('[MASKED]'), text.includes('deploying with'), `${what}: where the secret was printed, [MASKED] is`);
      t.equal(text.startsWith('20'), timestamps, `${what}: stamped entries only with FF_TIMESTAMPS`);
    }
  }
});

t.test('buildJobLog: outcomes and the stage that failed', async (t) => {
  const ok = buildJobLog('success', { start: START, timestamps: true });
  t.same(ok.outcome, { status: 'success' });
  t.notOk(ok.sections.some((s) => s.status === 'failed'));
  const failed = buildJobLog('script-failure', { start: START, timestamps: true });
  t.equal(failed.outcome.status, 'failed');
  t.same(
    failed.sections.filter((s) => s.status === 'failed').map((s) => s.name),
    ['step_script'],
  );
  const retry = buildJobLog('get-sources-retry', { start: START, timestamps: true });
  t.same(
    retry.sections.filter((s) => s.name === 'get_sources').map((s) => [s.attempt, s.status]),
    [
      [1, 'failed'],
      [2, 'success'],
    ],
    'get_sources twice, the first attempt failed, the job still succeeds',
  );
  t.equal(retry.outcome.status, 'success');
});

t.test('buildJobLog: durations from the options, on the log clock', async (t) => {
  const step = (ms?: number) => {
    const log = buildJobLog('success', {
      start: START,
      timestamps: true,
      ...(ms === undefined ? {} : { durationsMs: { step_script: ms } }),
    });
    const s = log.sections.find((x) => x.name === 'step_script')!;
    t.ok(log.endNs >= s.endNs!, 'the final update comes after the last stage');
    return s.endNs! - s.startNs;
  };
  const short = step(5_000);
  t.ok(short >= 5_000_000_000n, 'at least the stage time asked for');
  t.ok(short < step(), 'shorter than the default step_script');
  const first = buildJobLog('success', { start: START, timestamps: true });
  t.equal(first.sections[0]!.startNs >= BigInt(START.getTime()) * 1_000_000n, true, 'nothing before the start');
  t.equal(first.firstTimestamp! >= BigInt(START.getTime()) * 1_000_000n, true);
});

t.test('buildJobLog: the output limit cuts the log and appends the unstamped notice', async (t) => {
  const limit = 16 * 1024;
  const log = buildJobLog('success', { start: START, timestamps: true, outputLimitBytes: 4096 });
  t.ok(log.truncated, 'a 4 KiB limit cuts a normal job log');
  const cut = buildJobLog('output-limit', { start: START, timestamps: true, outputLimitBytes: limit });
  t.ok(cut.truncated);
  const notice = `\n\x1b[33;1mJob's log exceeded limit of ${limit} bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n`;
  t.equal(cut.bytes.length, limit + Buffer.byteLength(notice), 'the limit, then the notice');
  t.equal(cut.bytes.subarray(limit).toString('utf8'), notice);
  t.ok(
    cut.sections.some((s) => s.truncated && s.endNs === undefined),
    'the section open at the cut never ends',
  );
  t.notOk(buildJobLog('success', { start: START, timestamps: true }).truncated, 'the default 4 MiB limit leaves a normal log whole');
});
