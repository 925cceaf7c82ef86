// metrics/metric-pipeline.ts: one MeterProvider with an OTLP reader per
// endpoint and the Prometheus reader on the same aggregation
// (docs/metrics.md#export). The export interval is long, so the only OTLP
// export is shutdown's final one: no wait depends on the clock.
import t from 'tap';
import { MetricPipeline } from '../../../src/telemetry/metrics/metric-pipeline.js';
import { createTransport, type ExportOutcome } from '../../../src/telemetry/export/otlp-client.js';
import { OtlpReceiver } from '../../../src/telemetry/receiver.js';
import { endpointSettings } from '../../support/export.js';

t.test('two endpoints and Prometheus see the same counts; shutdown exports once more to each', async (t) => {
  const a = await new OtlpReceiver().start();
  const b = await new OtlpReceiver().start();
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  const exported: [string, ExportOutcome][] = [];
  const pipeline = new MetricPipeline({
    resourceAttributes: { 'service.name': 'gitlab-otel-test' },
    transports: [
      { name: 'a', transport: createTransport(endpointSettings('a', a.url), {}, undefined, 'metrics') },
      { name: 'b', transport: createTransport(endpointSettings('b', b.url), {}, undefined, 'metrics') },
    ],
    settings: { intervalMs: 3_600_000, timeoutMs: 5000, temporality: 'cumulative' },
    prometheus: true,
    onExport: (endpoint, outcome) => exported.push([endpoint, outcome]),
  });
  const jobs = pipeline.meter('test').createCounter('ci_jobs');
  jobs.add(2, { status: 'failed' });
  jobs.add(1, { status: 'failed' });

  t.ok(pipeline.prometheus);
  t.match(await pipeline.prometheus!.text(), /^ci_jobs_total\{status="failed"\} 3$/m);
  t.equal(a.metrics.exports.length + b.metrics.exports.length, 0, 'nothing exported before the interval');

  await pipeline.shutdown(5000);
  for (const r of [a, b])
    t.match(r.metrics.of('ci_jobs', { status: 'failed' }), [{ value: 3, resource: { 'service.name': 'gitlab-otel-test' } }]);
  t.same(exported.map(([e, o]) => [e, o.kind]).sort(), [
    ['a', 'ok'],
    ['b', 'ok'],
  ]);
});

t.test('without Prometheus or endpoints the pipeline still meters and shuts down', async (t) => {
  const pipeline = new MetricPipeline({
    resourceAttributes: {},
    transports: [],
    settings: { intervalMs: 60_000, timeoutMs: 1000, temporality: 'delta' },
    prometheus: false,
  });
  t.equal(pipeline.prometheus, undefined);
  pipeline.meter('test').createCounter('c').add(1);
  await pipeline.shutdown(1000);
  t.pass('shut down without a reader to flush');
});
