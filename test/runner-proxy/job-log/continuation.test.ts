// Continuation entries (`+`) and the runner's own timestamper test data:
// markers and captured lines are read on the joined line, as GitLab renders
// it (docs/job-log.md#continuation-lines, docs/job-log.md#upstream-fixtures).
import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import {
  JobLog,
  MAX_CARRY_BYTES,
  MAX_LINE_TEXT_BYTES,
  type JobLogSink,
  type LogLine,
  type SectionMarker,
} from '../../../src/runner-proxy/job-log/job-log.js';
import { LogSpans } from '../../../src/runner-proxy/job-log/log-spans.js';
import type { SpanRecord } from '../../../src/telemetry/spans.js';
import { CTX, describe } from '../../support/job-log-harness.js';

const FIXTURES = new URL('../../fixtures-upstream/gitlab-runner/', import.meta.url);

function fixture(name: string): Buffer {
  return readFileSync(new URL(name, FIXTURES));
}

interface Recorded {
  markers: SectionMarker[];
  lines: LogLine[];
  limits: number;
  maxRetained: number;
}

/** Parse `bytes` cut at `cuts` (each piece one PATCH), with line capture on. */
function parse(bytes: Buffer, cuts: readonly number[] = []): Recorded {
  const r: Recorded = { markers: [], lines: [], limits: 0, maxRetained: 0 };
  const sink: JobLogSink = {
    marker: (m) => void r.markers.push(m),
    line: (l) => void r.lines.push(l),
    outputLimit: () => void r.limits++,
  };
  const p = new JobLog(sink);
  p.captureLines = true;
  let prev = 0;
  for (const c of [...cuts, bytes.length]) {
    if (c <= prev) continue;
    p.accept(prev, bytes.subarray(prev, c));
    r.maxRetained = Math.max(r.maxRetained, p.retainedBytes);
    prev = c;
  }
  p.end();
  return r;
}

const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));

/** Same result for the whole log and for every two-piece split of it. */
function everySplit(t: Test, bytes: Buffer, whole: Recorded, step = 1): void {
  let mismatches = 0;
  let first = -1;
  for (let cut = 1; cut < bytes.length; cut += step) {
    const r = parse(bytes, [cut]);
    if (json([r.markers, r.lines, r.limits]) !== json([whole.markers, whole.lines, whole.limits])) {
      mismatches++;
      if (first < 0) first = cut;
    }
  }
  t.equal(mismatches, 0, `every split gives the same markers and lines${first >= 0 ? ` (first mismatch at ${first})` : ''}`);
}

const ns = (iso: string) => BigInt(Date.parse(iso)) * 1_000_000n + BigInt(iso.slice(20, 26).slice(3)) * 1000n;

t.test('upstream TestWithTimestamps: lines as the runner meant them, joined and rendered as GitLab does', async (t) => {
  const bytes = fixture('timestamper-with-timestamps.trace');
  const r = parse(bytes);
  t.same(
    r.lines.map((l) => l.text),
    [
      'PREFIX This is the beginning of a new line',
      'PREFIX This is a split up line',
      // Ten `\r`-flushed progress writes are `+` entries of one line; each lone `\r` returns to its start.
      'Done.',
      'PREFIX Another windows new-line',
      'PREFIX multiple',
      'new',
      'lines',
      'in',
      'one',
      // (an empty line: nothing to report)
      'start',
      'end',
      // `PREFIX Eat carriages\r\r…\r\n`: the first lone `\r` already cleared it, as GitLab draws it.
      'PREFIX This is across',
      'two lines',
      'PREFIX The end',
    ],
  );
  t.ok(
    r.lines.every((l) => l.stream === 0xff),
    'stream ff, as written',
  );
  t.equal(r.lines[2]!.timeNs, ns('2021-01-01T03:00:00.020010Z'), 'a joined line is timed by its first entry');
  t.equal(r.lines[13]!.timeNs, ns('2021-01-02T02:00:00.020010Z'));
  t.same(r.markers, []);
  everySplit(t, bytes, r);
});

t.test('upstream TestCarriageReturnDoesNotSplitWrite: both markers, timed by their own entries', async (t) => {
  const bytes = fixture('timestamper-carriage-return.trace');
  const r = parse(bytes);
  t.same(
    r.markers.map((m) => [m.kind, m.name, m.seconds, m.timeNs, m.stream, m.offset]),
    [
      ['start', 'foo', 123, ns('2021-01-01T01:00:00.020010Z'), 1, 32],
      ['end', 'foo', 123, ns('2021-01-01T02:00:00.020010Z'), 1, bytes.indexOf('section_end')],
    ],
  );
  everySplit(t, bytes, r);
  const spans: SpanRecord[] = [];
  const job = new LogSpans(CTX, (s) => spans.push(s));
  job.accept(0, bytes);
  job.finish({ state: 'success' }, ns('2021-01-02T00:00:00.000000Z'));
  t.same(
    describe(spans).map((s) => [s.name, s.parent, s.start, s.end]),
    [['foo#1', 'job', ns('2021-01-01T01:00:00.020010Z'), ns('2021-01-01T02:00:00.020010Z')]],
    'a section from stamps, not from its whole seconds',
  );
});

t.test('upstream TestForcedFlush: an unterminated line over the 8 KiB buffer is one line again', async (t) => {
  const bytes = fixture('timestamper-forced-flush.trace');
  const r = parse(bytes);
  t.equal(r.lines.length, 3);
  t.equal(r.lines[0]!.text, 'PREFIX This is the beginning of a new line');
  t.equal(r.lines[1]!.text, 'We have no new line character in this write... The line is now flushed.');
  const long = r.lines[2]!.text;
  t.ok(long.startsWith('large continuous write incoming....'));
  t.equal(long.length, MAX_LINE_TEXT_BYTES, 'captured up to the cap, across the `+` entries');
  t.ok(r.maxRetained <= MAX_CARRY_BYTES, `retained ${r.maxRetained} ≤ ${MAX_CARRY_BYTES}`);
  everySplit(t, bytes, r, 97);
});

function header(iso: string, stream: number, flag: ' ' | '+', type: 'O' | 'E' = 'O'): string {
  return `${iso} ${stream.toString(16).padStart(2, '0')}${type}${flag}`;
}

t.test('a marker cut by a continuation join is found on the joined line, at every PATCH split', async (t) => {
  const cases: Array<[string, string]> = [
    // cut inside the name: one write held `\r` and no `\n`, so the runner flushed it and added the `\n`
    [
      `${header('2024-01-01T00:00:01.000001Z', 1, ' ')}x\rsection_start:1704067201:bu\n` +
        `${header('2024-01-01T00:00:02.000002Z', 1, '+')}ild[collapsed=true]\r\x1b[0KBuilding\n`,
      'build',
    ],
    // cut inside `section_` itself
    [
      `${header('2024-01-01T00:00:01.000001Z', 1, ' ')}x\rsect\n${header('2024-01-01T00:00:02.000002Z', 1, '+')}ion_start:1704067201:build[collapsed=true]\r\x1b[0KBuilding\n`,
      'build',
    ],
    // cut between `\r` and `\x1b[0K` (a write ending in `\r` is flushed at once)
    [
      `${header('2024-01-01T00:00:01.000001Z', 1, ' ')}section_start:1704067201:build[collapsed=true]\r\n${header('2024-01-01T00:00:02.000002Z', 1, '+')}\x1b[0KBuilding\n`,
      'build',
    ],
  ];
  for (const [text, name] of cases) {
    const bytes = Buffer.from(text, 'latin1');
    const r = parse(bytes);
    t.same(
      r.markers.map((m) => [m.kind, m.name, m.options, m.stream]),
      [['start', name, 'collapsed=true', 1]],
      json(text),
    );
    t.equal(r.markers[0]!.timeNs, ns('2024-01-01T00:00:01.000001Z'), 'timed by the entry holding its first byte');
    t.equal(r.markers[0]!.offset, text.indexOf('sect', 32), 'offset of its first byte');
    t.same(
      r.lines.map((l) => l.text),
      ['Building'],
      'the line after the marker; the text before it was cleared by a lone \\r or was empty',
    );
    everySplit(t, bytes, r);
  }
});

t.test('a `\\n` that is not followed by a continuation ends any marker in progress', async (t) => {
  const text =
    `${header('2024-01-01T00:00:01.000001Z', 1, ' ')}section_start:1704067201:build\n` +
    `${header('2024-01-01T00:00:02.000002Z', 1, ' ')}\r\x1b[0Knot a marker\n` +
    `${header('2024-01-01T00:00:03.000003Z', 1, ' ')}sect\n` +
    `${header('2024-01-01T00:00:04.000004Z', 1, ' ')}ion_end:1704067204:build\r\x1b[0K\n`;
  const bytes = Buffer.from(text, 'latin1');
  const r = parse(bytes);
  t.same(r.markers, []);
  everySplit(t, bytes, r);
  const unstamped = Buffer.from('section_start:1704067201:bu\nild\r\x1b[0K\n', 'latin1');
  t.same(parse(unstamped).markers, [], 'without stamps nothing is ever joined');
});

t.test('a marker inside a failed one is still found (GitLab scans on one byte further)', async (t) => {
  const text = `${header('2024-01-01T00:00:01.000001Z', 1, ' ')}section_start:1704067201:mysection_start:1704067202:inner\r\x1b[0K\n`;
  const bytes = Buffer.from(text, 'latin1');
  const r = parse(bytes);
  t.same(
    r.markers.map((m) => [m.name, m.seconds, m.offset]),
    [['inner', 1704067202, text.indexOf('section_start:1704067202')]],
  );
  everySplit(t, bytes, r);
});

t.test('enrichment reads the joined, rendered line: progress rewritten with `\\r` in a stage', async (t) => {
  const text =
    `${header('2024-01-01T00:00:01.000001Z', 0, ' ')}section_start:1704067201:get_sources\r\x1b[0K\n` +
    `${header('2024-01-01T00:00:01.000002Z', 0, '+')}\x1b[0K\x1b[36;1mGetting source from Git repository\x1b[0;m\n` +
    `${header('2024-01-01T00:00:01.500000Z', 1, ' ')}\x1b[32;1mFetching changes\r\n` +
    `${header('2024-01-01T00:00:01.600000Z', 1, '+')}\x1b[32;1mFetching changes with git depth set to 20...\x1b[0;m\n` +
    `${header('2024-01-01T00:00:02.000000Z', 1, ' ')}\x1b[32;1mCreated fresh repository.\x1b[0;m\n` +
    `${header('2024-01-01T00:00:03.000000Z', 0, ' ')}section_end:1704067203:get_sources\r\x1b[0K\n` +
    `${header('2024-01-01T00:00:03.000001Z', 0, '+')}section_start:1704067203:step_script\r\x1b[0K\n` +
    `${header('2024-01-01T00:00:09.000000Z', 0, ' ')}section_end:1704067209:step_script\r\x1b[0K\n`;
  const bytes = Buffer.from(text, 'latin1');
  const run = (cut?: number) => {
    const spans: SpanRecord[] = [];
    const job = new LogSpans(CTX, (s) => spans.push(s));
    if (cut === undefined) job.accept(0, bytes);
    else {
      job.accept(0, bytes.subarray(0, cut));
      job.accept(cut, bytes.subarray(cut));
    }
    job.finish({ state: 'success' }, 1_704_067_300_000_000_000n);
    return spans;
  };
  const whole = run();
  const get = whole.find((s) => s.name === 'get_sources')!;
  t.match(get.attributes, { 'ci.git.depth': 20, 'ci.git.operation': 'clone' });
  t.equal(get.startTimeUnixNano, 1_704_067_201_000_001_000n);
  t.equal(get.endTimeUnixNano, 1_704_067_203_000_000_000n);
  const step = whole.find((s) => s.name === 'step_script')!;
  t.equal(step.startTimeUnixNano, 1_704_067_203_000_001_000n, 'a marker on a `+` entry, timed by that entry');
  let mismatches = 0;
  for (let cut = 1; cut < bytes.length; cut++) if (json(describe(run(cut))) !== json(describe(whole))) mismatches++;
  t.equal(mismatches, 0, 'every PATCH split gives the same spans and attributes');
});

t.test('a `+` entry continues its own stream, not an entry of another stream written in between', async (t) => {
  // step-runner writes stdout and stderr through two timestampers: a marker
  // cut on stdout continues after a stderr notice (docs/job-log.md#continuation-lines).
  const text =
    `${header('2024-01-01T00:00:01.000001Z', 1, ' ')}x\rsection_start:1704067201:up\n` +
    `${header('2024-01-01T00:00:01.500000Z', 1, ' ', 'E')}\x1b[32;1mUploading artifacts...\x1b[0;m\n` +
    `${header('2024-01-01T00:00:02.000002Z', 1, '+')}load[collapsed=true]\r\x1b[0K\n` +
    `${header('2024-01-01T00:00:03.000000Z', 1, '+')}Uploading artifacts as "archive" to coordinator... 201 Created\n`;
  const bytes = Buffer.from(text, 'latin1');
  const r = parse(bytes);
  t.same(
    r.markers.map((m) => [m.name, m.stream, m.timeNs]),
    [['upload', 1, ns('2024-01-01T00:00:01.000001Z')]],
  );
  t.same(
    r.lines.map((l) => [l.text, l.timeNs]),
    [
      ['\x1b[32;1mUploading artifacts...\x1b[0;m', ns('2024-01-01T00:00:01.500000Z')],
      ['Uploading artifacts as "archive" to coordinator... 201 Created', ns('2024-01-01T00:00:03.000000Z')],
    ],
    'the stderr line is its own; the stdout line after the marker is not joined to it',
  );
  everySplit(t, bytes, r);
});
