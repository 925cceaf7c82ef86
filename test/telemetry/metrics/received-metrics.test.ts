// The receiver's metric side, pure parts: decoding what the SDK's own OTLP
// serializer writes, merging cumulative and delta points, and percentiles from
// buckets (docs/metrics.md#demo).
import t from 'tap';
import { MeterProvider, AggregationTemporality, MetricReader } from '@opentelemetry/sdk-metrics';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer/build/src/metrics/protobuf/index.js';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  decodeMetricsRequest,
  distribution,
  quantile,
  ReceivedMetrics,
  quantileBound,
  TEMPORALITY,
  type ReceivedPoint,
} from '../../../src/telemetry/metrics/received-metrics.js';

class PullReader extends MetricReader {
  constructor(temporality: AggregationTemporality) {
    super({ aggregationTemporalitySelector: () => temporality });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

async function exported(temporality: AggregationTemporality, record: (p: MeterProvider) => void): Promise<ReceivedPoint[]> {
  const reader = new PullReader(temporality);
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'x' }), readers: [reader] });
  record(provider);
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  const bytes = ProtobufMetricsSerializer.serializeRequest(resourceMetrics)!;
  return decodeMetricsRequest(Buffer.from(bytes));
}

t.test('decodes the SDK serializer’s histograms, counters and gauges with units, attributes and temporality', async (t) => {
  const points = await exported(AggregationTemporality.DELTA, (p) => {
    const m = p.getMeter('m');
    const h = m.createHistogram('h', { unit: 's', advice: { explicitBucketBoundaries: [1, 10] } });
    h.record(0.5, { a: 'x' });
    h.record(5, { a: 'x' });
    h.record(50, { a: 'y' });
    m.createCounter('c', { unit: '{job}' }).add(3, { ok: true });
    m.createObservableGauge('g').addCallback((r) => r.observe(7));
  });
  const hx = points.find((p) => p.metric === 'h' && p.attributes.a === 'x')!;
  t.match(hx, {
    kind: 'histogram',
    unit: 's',
    temporality: TEMPORALITY.delta,
    count: 2,
    sum: 5.5,
    bucketCounts: [1, 1, 0],
    explicitBounds: [1, 10],
  });
  t.equal(hx.resource['service.name'], 'x');
  t.match(
    points.find((p) => p.metric === 'c'),
    { kind: 'sum', value: 3, unit: '{job}', attributes: { ok: true } },
  );
  t.match(
    points.find((p) => p.metric === 'g'),
    { kind: 'gauge', value: 7 },
  );
  t.throws(() => decodeMetricsRequest(Buffer.from([0x0a, 0xff])), 'bytes that are not a request');
});

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

t.test('distribution: the latest cumulative point per series, delta points added', async (t) => {
  const d = distribution([
    point({ timeUnixNano: 1n, count: 1, sum: 0.5, bucketCounts: [1, 0, 0] }),
    point({ timeUnixNano: 2n, count: 3, sum: 12.5, bucketCounts: [1, 1, 1] }),
    point({ attributes: { a: 'other' }, count: 1, sum: 2, bucketCounts: [0, 1, 0] }),
    point({ temporality: TEMPORALITY.delta, count: 1, sum: 3, bucketCounts: [0, 1, 0] }),
    point({ temporality: TEMPORALITY.delta, count: 2, sum: 1, bucketCounts: [2, 0, 0] }),
  ]);
  t.same(d, { bounds: [1, 10], counts: [3, 3, 1], count: 7, sum: 18.5 });
  t.equal(distribution([]), undefined);
});

t.test('quantiles: interpolated as histogram_quantile does, and the honest bucket bound', async (t) => {
  const d = { bounds: [1, 10], counts: [2, 2, 0], count: 4, sum: 0 };
  t.equal(quantile(d, 0.5), 1, 'rank 2 ends the first bucket');
  t.equal(quantile(d, 0.75), 5.5, 'halfway through (1, 10]');
  t.equal(quantileBound(d, 0.5), 1);
  t.equal(quantileBound(d, 0.95), 10);
  const inf = { bounds: [1, 10], counts: [0, 0, 2], count: 2, sum: 0 };
  t.equal(quantileBound(inf, 0.5), Infinity, 'past the last bound');
  t.equal(quantile(inf, 0.5), 10, 'interpolation stops at the last finite bound');
  t.ok(Number.isNaN(quantileBound({ bounds: [1], counts: [0, 0], count: 0, sum: 0 }, 0.5)));
});

t.test('ReceivedMetrics keeps the latest points only, and its wait is bounded', async (t) => {
  const kept = new ReceivedMetrics(3);
  for (let i = 0; i < 5; i++) kept.accept([point({ metric: `m${i}` })]);
  t.same(
    kept.points.map((p) => p.metric),
    ['m2', 'm3', 'm4'],
  );
  t.equal(kept.exports.length, 3);
  await t.rejects(
    kept.waitFor(() => false, 50),
    /metrics condition not met within 50 ms/,
  );
  const waiting = kept.waitFor((m) => m.of('late').length === 1, 5_000);
  kept.accept([point({ metric: 'late' })]);
  await waiting;
  t.pass('resolved by the export that satisfied it');
});
