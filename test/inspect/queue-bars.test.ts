// The `queued` bar before each job (docs/metrics.md#queue-time): derived from
// job_execution's ci.job.time_in_queue_seconds, a sibling ending where the job
// starts; not counted as a span, never the trace's head; a received
// job_queued span replaces it.
import t from 'tap';
import type { ReceivedSpan } from '../../src/telemetry/receiver.js';
import { isQueueBar } from '../../src/inspect/queue-bars.js';
import { assembleTraces, headSpan } from '../../src/inspect/trace-tree.js';
import { renderWaterfall } from '../../src/inspect/waterfall.js';
import { renderHtml } from '../../src/inspect/html.js';
import { formatDuration } from '../../src/inspect/duration.js';
import { receivedSpan } from '../support/inspect-trace.js';

const S = 1_000_000_000n;
const span = (over: Partial<ReceivedSpan> & { spanId: string }): ReceivedSpan => receivedSpan(over);
const job = (queue: unknown, parentSpanId = '') =>
  span({
    spanId: 'aaaaaaaaaaaaaaaa',
    parentSpanId,
    name: 'job_execution',
    startTimeUnixNano: 100n * S,
    endTimeUnixNano: 160n * S,
    attributes: { 'ci.job.id': 5, 'ci.job.name': 'build', 'ci.job.time_in_queue_seconds': queue as number },
  });
const stage = span({
  spanId: 'bbbbbbbbbbbbbbbb',
  parentSpanId: 'aaaaaaaaaaaaaaaa',
  name: 'step_script',
  startTimeUnixNano: 101n * S,
  endTimeUnixNano: 150n * S,
});

t.test('a queued bar before the job, from its attribute alone', async (t) => {
  const [trace] = assembleTraces([job(30), stage]);
  const [bar, jobNode] = trace!.roots;
  t.equal(bar!.span.name, 'queued');
  t.ok(isQueueBar(bar!.span));
  t.equal(bar!.span.startTimeUnixNano, 70n * S, 'pick-up minus the queue time');
  t.equal(bar!.span.endTimeUnixNano, 100n * S, 'ends where the job starts');
  t.equal(jobNode!.span.name, 'job_execution', 'the job right after it, as its sibling');
  t.equal(trace!.spanCount, 2, 'a derived bar is not a received span');
  t.equal(headSpan(trace!)?.name, 'job_execution', 'the trace is still named after the job');
  t.equal(trace!.startTimeUnixNano, 70n * S, 'the time axis starts at enqueue');

  const text = renderWaterfall(trace!, { width: 100, color: false, attributes: false });
  const lines = text.split('\n');
  const q = lines.findIndex((l) => l.startsWith('queued'));
  t.ok(q > 0 && lines[q + 1]!.startsWith('job_execution (build)'), 'terminal: the queued row right above the job');
  t.ok(lines[q]!.includes(` ${formatDuration(30n * S)} │`), 'its duration is the queue time');
  t.match(renderHtml([trace!]), />queued</, 'HTML draws it too');
});

t.test('no bar without a positive queue time, none beside a received job_queued span', async (t) => {
  for (const q of [undefined, null, 0, 'x']) {
    const [trace] = assembleTraces([job(q), stage]);
    t.notOk(
      trace!.roots.some((r) => r.span.name === 'queued'),
      `no bar for ${JSON.stringify(q)}`,
    );
  }
  const queued = span({
    spanId: 'cccccccccccccccc',
    parentSpanId: '1111111111111111',
    name: 'job_queued',
    startTimeUnixNano: 70n * S,
    endTimeUnixNano: 100n * S,
    attributes: { 'ci.job.id': 5 },
  });
  const [trace] = assembleTraces([job(30, '1111111111111111'), stage, queued]);
  t.same(
    trace!.roots.map((r) => r.span.name),
    ['job_queued', 'job_execution'],
    'the exported span is drawn, not a derived copy',
  );
});

t.test('several jobs: each queued bar sits right above its own job, whatever the queue times', async (t) => {
  // Three jobs enqueued together, picked up one after another: sorted by start alone, the three bars (which start
  // earlier than every job) would come first, apart from their jobs.
  const jobs = [0, 1, 2].map((i) =>
    span({
      spanId: `${i + 1}`.repeat(16),
      parentSpanId: 'c'.repeat(16),
      name: 'job_execution',
      startTimeUnixNano: (100n + 10n * BigInt(i)) * S,
      endTimeUnixNano: (200n + BigInt(i)) * S,
      attributes: { 'ci.job.id': 10 + i, 'ci.job.name': `job-${i}`, 'ci.job.time_in_queue_seconds': 20 + 10 * i },
    }),
  );
  const [trace] = assembleTraces(jobs);
  const order = trace!.roots.map((r) => (isQueueBar(r.span) ? `queued:${String(r.span.attributes['ci.job.name'])}` : r.span.name));
  t.same(order, ['queued:job-0', 'job_execution', 'queued:job-1', 'job_execution', 'queued:job-2', 'job_execution']);
  for (let i = 0; i < 6; i += 2) {
    t.equal(
      trace!.roots[i]!.span.endTimeUnixNano,
      trace!.roots[i + 1]!.span.startTimeUnixNano,
      `bar ${i / 2} ends where the job after it starts`,
    );
  }
  const rows = renderWaterfall(trace!, { width: 100, color: false, attributes: false })
    .split('\n')
    .map((l) => l.replace(/^… /, '')) // the mark of a parent not received
    .filter((l) => /^(queued|job_execution)/.test(l))
    .map((l) => l.split(' ')[0]! + (l.startsWith('job_execution') ? ` ${l.split(' ')[1]}` : ''));
  t.same(
    rows,
    ['queued', 'job_execution (job-0)', 'queued', 'job_execution (job-1)', 'queued', 'job_execution (job-2)'],
    'terminal: the same order',
  );
});
