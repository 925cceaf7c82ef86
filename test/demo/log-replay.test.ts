// The demo's log replay (src/demo/log-replay.ts): where a job log is cut into
// PATCHes and when each is sent, read from the FF_TIMESTAMPS stamps
// (docs/runner-protocol.md#timestamps). Pure: logs from the lab's builder.
import t from 'tap';
import { buildJobLog } from '../../src/lab/job-log-builder.js';
import { lineStampNs, replayChunks } from '../../src/demo/log-replay.js';

t.test('replayChunks: cuts after every section_end line, covers the log exactly, in stamp order', async (t) => {
  const log = buildJobLog('user-sections', { start: new Date('2026-03-01T10:00:00Z'), timestamps: true });
  const chunks = replayChunks(log.bytes);
  t.equal(
    chunks.reduce((n, c) => n + c.bytes, 0),
    log.bytes.length,
    'every byte is uploaded once',
  );
  const markers = log.bytes.toString('latin1').split('section_end:').length - 1;
  t.equal(markers, log.sections.length, 'one end marker per section');
  t.equal(chunks.length, markers + 1, 'one chunk per section end, plus the tail');
  let offset = 0;
  for (const [i, c] of chunks.entries()) {
    offset += c.bytes;
    if (i < chunks.length - 1) {
      const lastLine = log.bytes.subarray(0, offset).toString('latin1').split('\n').at(-2)!;
      t.match(lastLine, /section_end:\d+:/, `chunk ${i} ends right after an end marker`);
      t.equal(log.bytes[offset - 1], 0x0a, `chunk ${i} ends at a line end`);
    }
    if (i > 0) t.ok(c.atNs >= chunks[i - 1]!.atNs, `chunk ${i} is not timed before the one before it`);
  }
  // Stage ends are sent at the stage's end time.
  const stageEnds = log.sections.filter((s) => s.kind === 'stage').map((s) => s.endNs!);
  const times = new Set(chunks.map((c) => c.atNs));
  t.ok(
    stageEnds.every((ns) => times.has(ns)),
    'every stage end is the send time of a chunk',
  );
});

t.test('replayChunks: a log without stamps is sent at the fallback time', async (t) => {
  const log = buildJobLog('success', { start: new Date('2026-03-01T10:00:00Z'), timestamps: false });
  const chunks = replayChunks(log.bytes, 77n);
  t.equal(
    chunks.reduce((n, c) => n + c.bytes, 0),
    log.bytes.length,
  );
  t.ok(chunks.every((c) => c.atNs === 77n));
  t.same(replayChunks(Buffer.alloc(0)), [], 'an empty log is no upload');
});

t.test('lineStampNs: microsecond stamps, and nothing for unstamped or malformed lines', async (t) => {
  t.equal(lineStampNs('2026-03-01T10:00:01.000123Z 00O hello'), 1772359201000123000n);
  t.equal(lineStampNs('hello'), undefined);
  t.equal(lineStampNs('2026-13-45T99:00:01.000123Z 00O bad date'), undefined);
});
