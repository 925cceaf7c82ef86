// The machine-readable trace (src/inspect/trace-json.ts): exact nanoseconds as
// strings, offsets and durations in ms, nested as the waterfall. Pure: traces
// assembled from the shared fixture.
import t from 'tap';
import { assembleTraces } from '../../src/inspect/trace-tree.js';
import { traceToJson } from '../../src/inspect/trace-json.js';
import { asReceived, FIXTURE_SPANS } from '../support/inspect-trace.js';

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
