// The lab's log writer is a port of the runner's timestamper: given the writes
// of gitlab-runner's own timestamper tests, it must write their expected bytes
// exactly (test/fixtures-upstream/gitlab-runner/SOURCE.md,
// docs/job-log.md#timestamped-entries).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { RunnerLogWriter, STAMPER_BUFFER_BYTES } from '../../../src/lab/job-log-builder.js';

const FIXTURES = new URL('../../fixtures-upstream/gitlab-runner/', import.meta.url);
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
