import t from 'tap';
import {
  JobLog,
  MAX_CARRY_BYTES,
  MAX_MARKER_BYTES,
  isStampHeader,
  stampTimeNs,
  type JobLogSink,
  type LogLine,
  type SectionMarker,
} from '../../../src/runner-proxy/job-log/job-log.js';
import { buildJobLog, JOB_LOG_SCENARIOS } from '../../../src/lab/job-log-builder.js';
import { STAGE_ALLOWANCE } from '../../../src/runner-proxy/job-log/log-spans.js';
import { describe, run, seeded, splitAt, randomPieces } from '../../support/job-log-harness.js';

const START = new Date('2026-03-14T15:09:26.535897Z');

function recorder(): JobLogSink & { markers: SectionMarker[]; lines: LogLine[]; limits: number } {
  const r = {
    markers: [] as SectionMarker[],
    lines: [] as LogLine[],
    limits: 0,
    marker: (m: SectionMarker) => void r.markers.push(m),
    line: (l: LogLine) => void r.lines.push(l),
    outputLimit: () => void r.limits++,
  };
  return r;
}

t.test('FF_TIMESTAMPS header: fixed positions and microsecond time', async (t) => {
  const h = Buffer.from('2024-01-01T00:00:00.123456Z 00O hello');
  t.ok(isStampHeader(h, 0));
  t.equal(stampTimeNs(h, 0), 1_704_067_200_123_456_000n);
  t.notOk(isStampHeader(Buffer.from('2024-01-01 00:00:00.123456Z 00O hello'), 0), 'no T');
  t.notOk(isStampHeader(Buffer.from('2024-01-01T00:00:00.123456Z 0xO hello'), 0), 'stream not hex');
  t.notOk(isStampHeader(Buffer.from('2024-01-01T00:00:00.123456Z 00X hello'), 0), 'type not O/E');
  t.equal(stampTimeNs(Buffer.from('20x4-01-01T00:00:00.123456Z 00O '), 0), undefined, 'bad digits are no time');
});

t.test('markers: stamps, streams, options; script output never decoded unless asked', async (t) => {
  const log = Buffer.from(
    '2024-01-01T00:00:01.000001Z 00O section_start:1704067201:step_script\r\x1b[0K\n' +
      '2024-01-01T00:00:01.000001Z 00O+\x1b[0K\x1b[36;1mExecuting "step_script" stage\x1b[0;m\n' +
      '2024-01-01T00:00:02.500000Z 01O \x1b[0Ksection_start:1704067202:my.build-1[collapsed=true, hide_duration=true]\r\x1b[0KBuilding\n' +
      '2024-01-01T00:00:03.000000Z 01O section_end:1704067203:bad name\r\x1b[0K\n' +
      '2024-01-01T00:00:04.250000Z 01O \x1b[0Ksection_end:1704067204:my.build-1\r\x1b[0K\n' +
      '2024-01-01T00:00:05.000007Z 00O section_end:1704067205:step_script\r\x1b[0K\n',
  );
  const r = recorder();
  const p = new JobLog(r);
  p.accept(0, log);
  t.same(
    r.markers.map((m) => [m.kind, m.name, m.options, m.seconds, m.timeNs, m.stamped, m.stream]),
    [
      ['start', 'step_script', undefined, 1704067201, 1_704_067_201_000_001_000n, true, 0],
      ['start', 'my.build-1', 'collapsed=true, hide_duration=true', 1704067202, 1_704_067_202_500_000_000n, true, 1],
      ['end', 'my.build-1', undefined, 1704067204, 1_704_067_204_250_000_000n, true, 1],
      ['end', 'step_script', undefined, 1704067205, 1_704_067_205_000_007_000n, true, 0],
    ],
  );
  t.equal(r.markers[0]!.offset, 32, 'offset of the marker itself');
  t.equal(r.lines.length, 0, 'no lines decoded while captureLines is off');
  t.equal(p.firstTimestamp, 1_704_067_201_000_001_000n);
  t.equal(p.lastTimestamp, 1_704_067_205_000_007_000n);
  t.equal(p.retainedBytes, 0);
});

t.test('without FF_TIMESTAMPS a marker is timed by its whole seconds', async (t) => {
  const r = recorder();
  const p = new JobLog(r);
  p.accept(
    0,
    Buffer.from('\x1b[0KRunning\x1b[0;m\nsection_start:1704067201:get_sources\r\x1b[0K\x1b[0K\x1b[36;1mGetting source\x1b[0;m\n'),
  );
  t.same(
    r.markers.map((m) => [m.name, m.timeNs, m.stamped, m.stream]),
    [['get_sources', 1_704_067_201_000_000_000n, false, undefined]],
  );
  t.equal(p.firstTimestamp, undefined);
});

t.test('a marker at the end of a PATCH with no newline yet is reported at once', async (t) => {
  const r = recorder();
  const p = new JobLog(r);
  const first = Buffer.from('section_end:1704067201:get_sources\r\x1b[0K');
  p.accept(0, first);
  t.equal(r.markers.length, 1, 'reported without waiting for the newline');
  p.accept(first.length, Buffer.from('section_start:1704067202:restore_cache\r\x1b[0K\n'));
  t.same(
    r.markers.map((m) => m.name),
    ['get_sources', 'restore_cache'],
    'and not reported twice',
  );
});

t.test('captured lines are whole, decoded, without the stamp', async (t) => {
  const r = recorder();
  const p = new JobLog(r);
  p.captureLines = true;
  const line = '2024-01-01T00:00:01.000001Z 01O Résumé ✓ 測試 🚀\r\n';
  const bytes = Buffer.from(line);
  for (let i = 0; i < bytes.length; i++) p.accept(i, bytes.subarray(i, i + 1));
  t.same(r.lines, [], 'a stamped line may still be continued by a `+` entry: not reported yet');
  p.end();
  t.same(
    r.lines.map((l) => [l.text, l.stream, l.timeNs]),
    [['Résumé ✓ 測試 🚀', 1, 1_704_067_201_000_001_000n]],
  );
});

t.test('output-limit notice (unstamped, below the stamper)', async (t) => {
  const r = recorder();
  const p = new JobLog(r);
  p.accept(
    0,
    Buffer.from(
      "2024-01-01T00:00:01.000001Z 01O partial li\n\x1b[33;1mJob's log exceeded limit of 4194304 bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n",
    ),
  );
  t.equal(r.limits, 1);
  t.ok(p.outputLimitHit);
  const spoof = recorder();
  const q = new JobLog(spoof);
  q.accept(0, Buffer.from("2024-01-01T00:00:01.000001Z 01O \x1b[33;1mJob's log exceeded limit of 4194304 bytes.\n"));
  t.equal(spoof.limits, 0, 'a script printing the notice (stamped) is not the runner');
});

t.test('re-sent ranges, retries and a 412 re-upload from 0 are parsed once', async (t) => {
  const log = buildJobLog('user-sections', { start: START, timestamps: true });
  const b = log.bytes;
  const once = describe(run(log, [[0, b]]).spans);
  const third = Math.floor(b.length / 3);
  const messy: Array<[number, Buffer]> = [
    [0, b.subarray(0, third)],
    [0, b.subarray(0, third)], // the runner's retry of the same PATCH
    [third - 100, b.subarray(third - 100, 2 * third)], // 416 moved the offset back
    [0, b.subarray(0, 2 * third)], // 412: everything again from 0
    [2 * third, b.subarray(2 * third)],
    [b.length - 10, b.subarray(b.length - 10)],
  ];
  const r = run(log, messy);
  t.same(describe(r.spans), once);
  t.equal(r.job.offset, b.length);
});

t.test('bytes never seen (a missed PATCH): resync at the next line, no crash, later stages still found', async (t) => {
  const log = buildJobLog('success', { start: START, timestamps: true });
  const b = log.bytes;
  const stepStart = b.indexOf('section_start:', b.indexOf('step_script') - 40);
  const r = run(log, [
    [0, b.subarray(0, 500)],
    [stepStart + 5, b.subarray(stepStart + 5)],
  ]);
  const names = describe(r.spans).map((s) => s.name);
  t.ok(names.includes('cleanup_file_variables#1'), 'stages after the gap are found');
  t.notOk(names.includes('step_script#1'), 'the stage whose marker was lost is not invented');
});

t.test('an endless line without newline keeps memory bounded and still finds markers', async (t) => {
  const r = recorder();
  const p = new JobLog(r);
  const chunk = Buffer.alloc(256 * 1024, 'x');
  let offset = 0;
  let max = 0;
  for (let i = 0; i < 40; i++) {
    p.accept(offset, chunk);
    offset += chunk.length;
    if (i === 20) {
      const m = Buffer.from('\rsection_start:1704067201:progress\r\x1b[0K');
      // Cut the marker across two PATCHes.
      p.accept(offset, m.subarray(0, 12));
      p.accept(offset + 12, m.subarray(12));
      offset += m.length;
    }
    max = Math.max(max, p.retainedBytes);
  }
  t.ok(max <= MAX_CARRY_BYTES, `retained ${max} ≤ ${MAX_CARRY_BYTES}`);
  t.same(
    r.markers.map((m) => m.name),
    ['progress'],
  );
});

for (const timestamps of [true, false]) {
  t.test(`split anywhere, spans identical (timestamps ${timestamps})`, async (t) => {
    const log = buildJobLog('user-sections', { start: START, timestamps });
    const b = log.bytes;
    const whole = describe(run(log, [[0, b]]).spans);
    t.equal(whole.length, 13, 'the scenario has stages and sections');
    // Name the kinds of boundary the issue asks for, and check each exists.
    const inMarker = b.indexOf('section_start:') + 10;
    const inHeader = b.indexOf('Z 01O') - 5;
    const euro = b.indexOf(Buffer.from('✓'));
    if (timestamps) t.ok(inHeader > 0, 'a cut inside a stamp header');
    t.ok(euro > 0, 'a cut inside a UTF-8 character');
    for (const cut of [inMarker, inHeader, euro + 1, euro + 2]) {
      if (cut > 0) t.same(describe(run(log, splitAt(b, [cut])).spans), whole, `cut at ${cut}`);
    }
    let mismatches = 0;
    for (let cut = 1; cut < b.length; cut++) {
      const got = describe(run(log, splitAt(b, [cut])).spans);
      if (
        JSON.stringify(got, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) !==
        JSON.stringify(whole, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))
      )
        mismatches++;
    }
    t.equal(mismatches, 0, `every one of ${b.length - 1} two-PATCH splits gives the same spans`);
  });
}

t.test('random splits with a fixed seed, every scenario, both modes', async (t) => {
  const rand = seeded(20260314);
  for (const scenario of JOB_LOG_SCENARIOS) {
    for (const timestamps of [true, false]) {
      const log = buildJobLog(scenario, { start: START, timestamps });
      const whole = describe(run(log, [[0, log.bytes]]).spans);
      for (let round = 0; round < 8; round++) {
        const maxPiece = [1, 7, 64, 700, 4096][round % 5]!;
        const r = run(log, randomPieces(log.bytes, rand, maxPiece));
        t.same(describe(r.spans), whole, `${scenario} ts=${timestamps} pieces≤${maxPiece}`);
        t.ok(r.maxRetained <= MAX_CARRY_BYTES);
      }
    }
  }
});

t.test('fuzz: random bytes and marker fragments never crash, memory stays bounded', async (t) => {
  const rand = seeded(7);
  const fragments = [
    'section_start:',
    'section_end:',
    'section_',
    ':1704067201:',
    'step_script',
    'get_sources',
    '[collapsed=true]',
    '\r\x1b[0K',
    '\n',
    '2024-01-01T00:00:01.000001Z 00O ',
    '2024-01-01T00:00:01.000001Z 01O+',
    '2024-01-01T00:00:01.000001Z 01E+',
    '2024-01-01T00:00:01.000001Z 0fO ',
    '\r\n',
    '\r',
    'sect',
    'ion_start:1704067201:',
    '9999-99-99T99:99:99.999999Z 00E ',
    "\x1b[33;1mJob's log exceeded limit of 12 bytes.\n",
    '\xff\xfe',
    '✓',
    'section_start:1704067201:step_script\r\x1b[0K',
    'section_end:1704067209:step_script\r\x1b[0K',
    'section_start:1704067202:x_1[collapsed=true]\r\x1b[0K',
    'section_end:1704067203:x_1\r\x1b[0K',
  ];
  let spans = 0;
  let markers = 0;
  let mismatched = 0;
  for (let job = 0; job < 40; job++) {
    const parts: Buffer[] = [];
    for (let i = 0; i < 400; i++) {
      if (rand() < 0.5) parts.push(Buffer.from(fragments[Math.floor(rand() * fragments.length)]!, 'latin1'));
      else parts.push(Buffer.from(Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256))));
    }
    const bytes = Buffer.concat(parts);
    const fake = { ...buildJobLog('success', { start: START, timestamps: false }), bytes };
    const r = run(fake, randomPieces(bytes, rand, 300), {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      jobSpanId: '00f067aa0ba902b7',
      maxSpans: 50,
      maxAttributeLength: 64,
    });
    t.ok(r.maxRetained <= MAX_CARRY_BYTES);
    t.ok(r.spans.length <= 50 + STAGE_ALLOWANCE, 'spans capped');
    // Whatever the bytes, where the PATCHes fall changes nothing the parser reports.
    const whole = recorder();
    const wholeLog = new JobLog(whole);
    wholeLog.captureLines = true;
    wholeLog.accept(0, bytes);
    wholeLog.end();
    const cut = recorder();
    const cutLog = new JobLog(cut);
    cutLog.captureLines = true;
    for (const [start, body] of randomPieces(bytes, rand, 1 + (job % 4) * 40)) cutLog.accept(start, body);
    cutLog.end();
    mismatched +=
      JSON.stringify([whole.markers, whole.lines, whole.limits], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ===
      JSON.stringify([cut.markers, cut.lines, cut.limits], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
        ? 0
        : 1;
    markers += whole.markers.length;
    for (const s of r.spans) {
      t.ok(s.endTimeUnixNano >= s.startTimeUnixNano);
      spans++;
    }
  }
  t.ok(spans > 0, 'the fuzz produced some spans');
  t.ok(markers > 0, 'the fuzz produced some markers');
  t.equal(mismatched, 0, 'markers, lines and notices are the same however the bytes are cut');
});

t.test('snapshot mid-log and restore: same spans as an uninterrupted run', async (t) => {
  const { LogSpans } = await import('../../../src/runner-proxy/job-log/log-spans.js');
  const { CTX } = await import('../../support/job-log-harness.js');
  const log = buildJobLog('script-failure', { start: START, timestamps: true });
  const b = log.bytes;
  const whole = describe(run(log, [[0, b]]).spans);
  for (const cut of [b.indexOf('section_start:', 2000) + 9, Math.floor(b.length / 2), b.length - 50]) {
    const spans: import('../../../src/telemetry/spans.js').SpanRecord[] = [];
    const first = new LogSpans(CTX, (s) => spans.push(s));
    first.accept(0, b.subarray(0, cut));
    const snap = JSON.parse(JSON.stringify(first.snapshot()));
    const second = LogSpans.restore(CTX, snap, (s) => spans.push(s));
    second.accept(cut, b.subarray(cut));
    second.finish({ state: 'failed', failureReason: 'script_failure' }, log.endNs);
    t.same(describe(spans), whole, `restored at ${cut}`);
  }
});

t.test('a candidate that outgrows the longest marker gives up, and the byte past it can start a marker', async (t) => {
  const bogus = 'section_start:1704067201:x[' + 'a=b,'.repeat(143) + 'a';
  t.equal(bogus.length, MAX_MARKER_BYTES, 'the bogus candidate fills the longest marker exactly');
  const text = `${bogus}section_end:1704067202:y\r\x1b[0K\n`;
  for (const cut of [0, MAX_MARKER_BYTES - 1, MAX_MARKER_BYTES, MAX_MARKER_BYTES + 1]) {
    const r = recorder();
    const p = new JobLog(r);
    const b = Buffer.from(text, 'latin1');
    if (cut > 0) p.accept(0, b.subarray(0, cut));
    p.accept(cut, b.subarray(cut));
    t.same(
      r.markers.map((m) => [m.kind, m.name, m.offset]),
      [['end', 'y', MAX_MARKER_BYTES]],
      `cut at ${cut}`,
    );
  }
});

t.test('parser state: a version 1 state resumes at the next line; a malformed one is refused with a code', async (t) => {
  const r = recorder();
  const v1 = {
    v: 1,
    offset: 10,
    carry: Buffer.from('section_st').toString('base64'),
    scanFrom: 0,
    lineOpen: true,
    lineCut: false,
    lineStamped: false,
    resync: false,
    outputLimitHit: false,
    gapBytes: 0,
    duplicateBytes: 0,
  } as unknown as ConstructorParameters<typeof JobLog>[1];
  const p = new JobLog(r, v1);
  p.accept(10, Buffer.from('art:1704067201:lost\r\x1b[0K\nsection_start:1704067202:found\r\x1b[0K\n'));
  t.same(
    r.markers.map((m) => m.name),
    ['found'],
    'the cut line is skipped, the next is read',
  );
  t.equal(p.offset, 10 + 61);
  for (const bad of [
    { v: 3, offset: 0 },
    { v: 2, offset: -1, carry: '', atLineStart: true, resync: false, outputLimitHit: false, gapBytes: 0, duplicateBytes: 0 },
    {
      v: 2,
      offset: 5,
      carry: '',
      atLineStart: false,
      resync: false,
      outputLimitHit: false,
      gapBytes: 0,
      duplicateBytes: 0,
      candidate: { bytes: Buffer.from('xyz').toString('base64'), segments: [{ at: 0, offset: 0 }] },
    },
  ]) {
    t.throws(() => new JobLog(recorder(), bad as unknown as ConstructorParameters<typeof JobLog>[1]), { code: 'JOB_LOG_STATE_INVALID' });
  }
});
