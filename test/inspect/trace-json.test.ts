// The machine-readable trace (src/inspect/trace-json.ts): exact nanoseconds as
// strings, offsets and durations in ms, nested as the waterfall. Pure: traces
// assembled from the shared fixture.
import t from 'tap';
import { assembleTraces } from '../../src/inspect/trace-tree.js';
import { traceToJson } from '../../src/inspect/trace-json.js';
import { asReceived, FIXTURE_SPANS, receivedSpan } from '../support/inspect-trace.js';

t.test('JSON keeps exact nanoseconds as strings and nests like the waterfall', async (t) => {
  const json = traceToJson(assembleTraces(asReceived(FIXTURE_SPANS))[0]!);
  t.equal(json.name, 'job_execution');
  t.equal(json.startTimeUnixNano, '1700000000000000000');
  t.equal(json.durationMs, 42_500);
  t.equal(json.spanCount, 12);
  t.equal(json.errorCount, 3);
  t.same(json.resource, { 'service.name': 'gitlab-otel', 'gitlab.runner.executor': 'docker' });
  const step = json.spans[0]!.children.find((c) => c.name === 'step_script')!;
  t.same(
    step.children.map((c) => [c.name, c.startOffsetMs, c.durationMs, c.status.code]),
    [
      ['install_deps', 8300, 11_800, 0],
      ['unit_tests', 20_100, 17_800, 2],
    ],
  );
  t.same(Object.keys(json.spans[0]!.attributes), [...Object.keys(json.spans[0]!.attributes)].sort(), 'sorted keys');
  t.same(JSON.parse(JSON.stringify(json)), json, 'survives JSON round trip');
});

t.test('a trace of which only children arrived: rootReceived false, named and described by its first top-level span', async (t) => {
  const [trace] = assembleTraces([
    receivedSpan({ spanId: 's2', parentSpanId: 'lost', name: 'get_sources', startTimeUnixNano: 2_000_000n, endTimeUnixNano: 3_000_000n }),
    receivedSpan({
      spanId: 's1',
      parentSpanId: 'lost',
      name: 'prepare_executor',
      startTimeUnixNano: 1_000_000n,
      endTimeUnixNano: 2_500_000n,
      resource: { 'service.name': 'gitlab-otel' },
      attributes: { z: 1, a: 'x' },
      status: { code: 2, message: 'boom' },
    }),
  ]);
  const json = traceToJson(trace!);
  t.equal(json.rootReceived, false);
  t.equal(json.name, 'prepare_executor', 'the earliest top-level span names the trace');
  t.same(json.resource, { 'service.name': 'gitlab-otel' });
  t.equal(json.durationMs, 2, '1 ms to 3 ms');
  t.equal(json.errorCount, 1);
  t.same(
    json.spans.map((s) => [s.name, s.parent, s.parentSpanId, s.startOffsetMs, s.durationMs]),
    [
      ['prepare_executor', 'missing', 'lost', 0, 1.5],
      ['get_sources', 'missing', 'lost', 1, 1],
    ],
  );
  t.same(Object.keys(json.spans[0]!.attributes), ['a', 'z'], 'attribute keys sorted');
  t.same(json.spans[0]!.status, { code: 2, message: 'boom' });
});
