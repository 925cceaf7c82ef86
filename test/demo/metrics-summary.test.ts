// The demo's closing metrics summary (src/demo/metrics-summary.ts,
// docs/metrics.md#demo): percentiles as bucket upper bounds and the stage
// breakdown, from received metric points. Pure.
import t from 'tap';
import { TEMPORALITY, type ReceivedPoint } from '../../src/telemetry/metrics/received-metrics.js';
import { summarizeMetrics, metricsSummaryLines } from '../../src/demo/metrics-summary.js';

const point = (over: Partial<ReceivedPoint>): ReceivedPoint => ({
  metric: 'h',
  unit: 's',
  kind: 'histogram',
  temporality: TEMPORALITY.cumulative,
  attributes: {},
  resource: {},
  startTimeUnixNano: 0n,
  timeUnixNano: 1n,
  count: 0,
  sum: 0,
  bucketCounts: [0, 0, 0],
  explicitBounds: [1, 10],
  ...over,
});

t.test('the demo summary reads the received points: percentiles, stages by time spent', async (t) => {
  const points: ReceivedPoint[] = [
    point({ metric: 'ci.job.duration', count: 2, sum: 8, bucketCounts: [0, 2, 0] }),
    point({ metric: 'ci.job.queue.duration', count: 2, sum: 1, bucketCounts: [2, 0, 0] }),
    point({ metric: 'ci.stage.duration', attributes: { 'ci.stage.name': 'get_sources' }, count: 2, sum: 1, bucketCounts: [2, 0, 0] }),
    point({ metric: 'ci.stage.duration', attributes: { 'ci.stage.name': 'step_script' }, count: 2, sum: 6, bucketCounts: [0, 2, 0] }),
  ];
  const s = summarizeMetrics(points, 1);
  t.match(s, { exports: 1, job: { count: 2, p50: 10, p95: 10 }, queue: { count: 2, p50: 1 } });
  t.same(
    s.stages.map((x) => x.stage),
    ['step_script', 'get_sources'],
    'longest total first',
  );
  const lines = metricsSummaryLines(s, (_tone, text) => text);
  t.match(lines.join('\n'), /queue time +p50 ≤ 1s[\s\S]*job duration +p50 ≤ 10s[\s\S]*step_script .* 86%/);
  t.match(
    metricsSummaryLines(summarizeMetrics([], 0), (_t, x) => x),
    ['metrics: the collector received no CI/CD metrics'],
  );
});
