import t from 'tap';
import type { ReceivedSpan } from '../../src/telemetry/receiver.js';
import { assembleTraces, headSpan, isDetached, isLocalRoot, MAX_DEPTH, placement, walk, type Trace } from '../../src/inspect/trace-tree.js';
import { traceToJson } from '../../src/inspect/trace-json.js';
import { asReceived, FIXTURE_SPANS, TRACE_ID, receivedSpan } from '../support/inspect-trace.js';

const TA = 'a'.repeat(32);
const TB = 'b'.repeat(32);

const span = (over: Partial<ReceivedSpan> & { spanId: string }): ReceivedSpan =>
  receivedSpan({ traceId: TA, startTimeUnixNano: 1000n, endTimeUnixNano: 2000n, ...over });

const shape = (trace: Trace): string[] => [...walk(trace)].map((n) => `${'  '.repeat(n.depth)}${n.span.name} (${n.parent})`);

t.test('the fixture assembles as job → stages → user sections, in start order', async (t) => {
  const traces = assembleTraces(asReceived(FIXTURE_SPANS));
  t.equal(traces.length, 1);
  const trace = traces[0]!;
  t.equal(trace.traceId, TRACE_ID);
  t.equal(trace.spanCount, 12);
  t.equal(trace.errorCount, 3);
  t.equal(headSpan(trace)?.name, 'job_execution');
  t.same(shape(trace), [
    'job_execution (remote)',
    '  prepare_executor (present)',
    '  prepare_script (present)',
    '  get_sources (present)',
    '  restore_cache (present)',
    '  step_script (present)',
    '    install_deps (present)',
    '    unit_tests (present)',
    '  after_script (present)',
    '  archive_cache_on_failure (present)',
    '  upload_artifacts_on_failure (present)',
    '  cleanup_file_variables (present)',
  ]);
  t.equal(trace.endTimeUnixNano - trace.startTimeUnixNano, 42_500_000_000n);
});

t.test('stage spans whose job span has not arrived yet sit at the top, marked missing', async (t) => {
  const withoutJob = asReceived(FIXTURE_SPANS).filter((s) => s.name !== 'job_execution');
  const [trace] = assembleTraces(withoutJob);
  const top = trace!.roots.map((r) => `${r.span.name} (${r.parent})`);
  t.equal(top.length, 9, 'nine stages at the top');
  t.ok(top.every((r) => r.endsWith('(missing)')));
  t.equal(trace!.roots.find((r) => r.span.name === 'step_script')!.children.length, 2, 'sections still nest');
  t.notOk(
    trace!.roots.some((r) => isLocalRoot(r.span)),
    'no local root',
  );
  t.equal(traceToJson(trace!).rootReceived, false);
  t.equal(traceToJson(assembleTraces(asReceived(FIXTURE_SPANS))[0]!).rootReceived, true);
});

t.test('a parent id without the remote flag is missing, with it remote; no parent is none', async (t) => {
  const [trace] = assembleTraces([
    span({ spanId: '1', parentSpanId: 'ff', flags: 0x101 }),
    span({ spanId: '2', parentSpanId: 'ee', flags: 0x301, startTimeUnixNano: 1001n }),
    span({ spanId: '3', startTimeUnixNano: 1002n }),
  ]);
  t.same(shape(trace!), ['1 (missing)', '2 (remote)', '3 (none)']);
  t.same(
    trace!.roots.map((r) => isLocalRoot(r.span)),
    [false, true, true],
  );
});

t.test('several traces come out separately, ordered by start time then id', async (t) => {
  const traces = assembleTraces([
    span({ spanId: 'b1', traceId: TB, startTimeUnixNano: 500n }),
    span({ spanId: 'a1', traceId: TA, startTimeUnixNano: 900n }),
    span({ spanId: 'a2', traceId: TA, parentSpanId: 'a1', startTimeUnixNano: 950n }),
    span({ spanId: 'c1', traceId: 'c'.repeat(32), startTimeUnixNano: 500n }),
  ]);
  t.same(
    traces.map((tr) => [tr.traceId[0], tr.spanCount]),
    [
      ['b', 1],
      ['c', 1],
      ['a', 2],
    ],
  );
});

t.test('siblings with equal start times are ordered by name, then id', async (t) => {
  const [trace] = assembleTraces([
    span({ spanId: 'p' }),
    span({ spanId: 'x2', name: 'zeta', parentSpanId: 'p', startTimeUnixNano: 1500n }),
    span({ spanId: 'x1', name: 'alpha', parentSpanId: 'p', startTimeUnixNano: 1500n }),
    span({ spanId: 'x4', name: 'alpha', parentSpanId: 'p', startTimeUnixNano: 1500n }),
    span({ spanId: 'x3', name: 'early', parentSpanId: 'p', startTimeUnixNano: 1100n }),
  ]);
  t.same(
    trace!.roots[0]!.children.map((c) => c.span.spanId),
    ['x3', 'x1', 'x4', 'x2'],
  );
});

t.test('zero-duration spans and ends before starts count as zero long', async (t) => {
  const [trace] = assembleTraces([
    span({ spanId: 'p', startTimeUnixNano: 1000n, endTimeUnixNano: 1000n }),
    span({ spanId: 'c', parentSpanId: 'p', startTimeUnixNano: 1000n, endTimeUnixNano: 0n }),
  ]);
  t.equal(trace!.endTimeUnixNano, 1000n);
  t.same(placement(trace!, trace!.roots[0]!.span), { offset: 0, width: 0 }, 'no extent: no division by zero');
  const json = traceToJson(trace!);
  t.equal(json.durationMs, 0);
  t.equal(json.spans[0]!.children[0]!.durationMs, 0);
  t.equal(json.spans[0]!.children[0]!.endTimeUnixNano, '1000');
});

t.test('a span received twice (exporter retry) is counted once, the later copy wins', async (t) => {
  const [trace] = assembleTraces([span({ spanId: '1', name: 'first' }), span({ spanId: '1', name: 'second' })]);
  t.equal(trace!.spanCount, 1);
  t.equal(trace!.roots[0]!.span.name, 'second');
});

t.test('parent loops never hide spans: each loop is cut at its earliest span', async (t) => {
  const [trace] = assembleTraces([
    span({ spanId: 'r' }),
    span({ spanId: 'l1', parentSpanId: 'l2', startTimeUnixNano: 1200n }),
    span({ spanId: 'l2', parentSpanId: 'l1', startTimeUnixNano: 1100n }),
    span({ spanId: 'below', parentSpanId: 'l1', startTimeUnixNano: 1050n }),
    span({ spanId: 'self', parentSpanId: 'self', startTimeUnixNano: 1300n }),
  ]);
  t.equal(trace!.spanCount, 5);
  t.same(shape(trace!), ['r (none)', 'l2 (cycle)', '  l1 (present)', '    below (present)', 'self (missing)']);
});

t.test('a hostile chain deeper than MAX_DEPTH is re-hung at the top, not recursed into', async (t) => {
  const n = 5000;
  const chain = Array.from({ length: n }, (_, i) =>
    span({
      spanId: String(i + 1).padStart(16, '0'),
      parentSpanId: i === 0 ? '' : String(i).padStart(16, '0'),
      name: `s${i}`,
      startTimeUnixNano: BigInt(i),
    }),
  );
  const [trace] = assembleTraces(chain);
  const nodes = [...walk(trace!)];
  t.equal(nodes.length, n, 'every span still shown');
  t.ok(nodes.every((node) => node.depth < MAX_DEPTH));
  t.equal(trace!.roots.length, Math.ceil(n / MAX_DEPTH));
  t.same(
    trace!.roots.slice(0, 2).map((r) => [r.span.name, r.parent, isDetached(r)]),
    [
      ['s0', 'none', false],
      [`s${MAX_DEPTH}`, 'deep', true],
    ],
  );
  t.doesNotThrow(() => JSON.stringify(traceToJson(trace!)));
});
