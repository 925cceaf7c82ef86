import t from 'tap';
import type { ReceivedSpan } from '../../src/telemetry/receiver.js';
import { TraceCompletion } from '../../src/inspect/trace-completion.js';
import { asReceived, FIXTURE_SPANS, TRACE_ID } from '../support/inspect-trace.js';

const spans = asReceived(FIXTURE_SPANS);
const job = spans.find((s) => s.name === 'job_execution')!;
const children = spans.filter((s) => s !== job);

function orphan(traceId: string, spanId = '0000000000000001'): ReceivedSpan {
  return { ...children[0]!, traceId, spanId };
}

t.test('a trace completes once its root arrived and it stayed quiet for quietMs', async (t) => {
  const c = new TraceCompletion({ quietMs: 100, orphanQuietMs: 1000 });
  c.add(children.slice(0, 5), 0);
  c.add(children.slice(5), 50);
  t.equal(c.nextCheckAt(), 1050, 'no root yet: only the orphan deadline');
  t.same(c.due(500), [], 'stages alone do not complete it');
  c.add([job], 600);
  t.equal(c.nextCheckAt(), 700);
  t.same(c.due(699), [], 'still within the quiet time');
  const [done, ...rest] = c.due(700);
  t.same(rest, []);
  t.equal(done!.trace.traceId, TRACE_ID);
  t.equal(done!.trace.spanCount, 12);
  t.equal(done!.rootReceived, true);
  t.equal(done!.update, false);
  t.same(c.due(10_000), [], 'reported once');
  t.equal(c.nextCheckAt(), undefined, 'nothing waiting');
  t.equal(c.pendingCount, 0);
});

t.test('a new span restarts the quiet time', async (t) => {
  const c = new TraceCompletion({ quietMs: 100, orphanQuietMs: 1000 });
  c.add([job], 0);
  c.add(children.slice(0, 1), 90);
  t.same(c.due(150), []);
  t.equal(c.due(190).length, 1);
});

t.test('a span arriving after the trace was printed reopens it as an update', async (t) => {
  const c = new TraceCompletion({ quietMs: 100, orphanQuietMs: 1000 });
  c.add([job, ...children.slice(0, 3)], 0);
  t.equal(c.due(100)[0]!.trace.spanCount, 4);
  c.add(children.slice(3), 500);
  const [again] = c.due(600);
  t.equal(again!.update, true);
  t.equal(again!.trace.spanCount, 12);
});

t.test('a trace whose root never arrives is reported after orphanQuietMs, marked', async (t) => {
  const c = new TraceCompletion({ quietMs: 100, orphanQuietMs: 1000 });
  c.add(children, 0);
  t.same(c.due(999), []);
  const [done] = c.due(1000);
  t.equal(done!.rootReceived, false);
  t.equal(done!.trace.spanCount, 11);
});

t.test('flush reports everything still waiting, in start order, whatever the clock', async (t) => {
  // Start order differs from both the order of arrival and the order of trace ids here,
  // so neither could pass for it: the orphan trace (id f…f, added last) starts 1 s
  // before the job, and a third trace (id 0…0, added first) starts 1 s after it.
  const early: ReceivedSpan = { ...orphan('f'.repeat(32)), startTimeUnixNano: job.startTimeUnixNano - 1_000_000_000n };
  const late: ReceivedSpan = { ...orphan('0'.repeat(32)), startTimeUnixNano: job.startTimeUnixNano + 1_000_000_000n };
  const c = new TraceCompletion({ quietMs: 100, orphanQuietMs: 1000 });
  c.add([late], 0);
  c.add([job], 0);
  c.add([early], 0);
  const flushed = c.flush();
  t.same(
    flushed.map((d) => [d.trace.traceId, d.rootReceived]),
    [
      ['f'.repeat(32), false],
      [TRACE_ID, true],
      ['0'.repeat(32), false],
    ],
  );
  t.same(c.flush(), [], 'nothing left');
  t.equal(c.all().length, 3, 'all() still has them for the HTML report');
});

t.test('memory is bounded: oldest printed traces are forgotten first, excess spans dropped', async (t) => {
  const c = new TraceCompletion({ quietMs: 0, orphanQuietMs: 0, maxTraces: 2, maxSpansPerTrace: 3 });
  c.add([orphan('1'.repeat(32))], 0);
  c.due(0); // printed: may be forgotten first
  c.add([orphan('2'.repeat(32))], 1);
  c.add([orphan('3'.repeat(32))], 2);
  t.same(
    c.all().map((tr) => tr.traceId[0]),
    ['2', '3'],
    'the printed trace went, the waiting ones stayed',
  );
  c.add([orphan('4'.repeat(32))], 3);
  t.same(
    c.all().map((tr) => tr.traceId[0]),
    ['3', '4'],
    'then the least recently active',
  );
  t.equal(c.forgottenTraces, 2);

  c.add(
    children.slice(0, 5).map((s) => ({ ...s, traceId: '4'.repeat(32) })),
    4,
  );
  t.equal(c.all().find((tr) => tr.traceId[0] === '4')!.spanCount, 3);
  t.equal(c.droppedSpans, 3);
});
