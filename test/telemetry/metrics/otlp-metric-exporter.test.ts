// metrics/otlp-metric-exporter.ts: the SDK's PushMetricExporter over the
// project's own OTLP transport (docs/metrics.md#export), driven by a real
// MeterProvider and exporting to the real loopback gRPC receiver.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, InstrumentType, MeterProvider, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { PrometheusTextReader } from '../../../src/telemetry/metrics/prometheus-reader.js';
import { OtlpMetricExporter } from '../../../src/telemetry/metrics/otlp-metric-exporter.js';
import { createTransport, type ExportOutcome } from '../../../src/telemetry/export/otlp-client.js';
import { TEMPORALITY } from '../../../src/telemetry/metrics/received-metrics.js';
import { OtlpReceiver, type ExportAnswer } from '../../../src/telemetry/receiver.js';
import { endpointSettings } from '../../support/export.js';

/** ResourceMetrics collected from a real MeterProvider (a pull reader stands in for the periodic one). */
async function collected(add: number): Promise<ResourceMetrics> {
  const reader = new PrometheusTextReader();
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'svc' }), readers: [reader] });
  provider.getMeter('test').createCounter('ci_jobs').add(add, { status: 'success' });
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return resourceMetrics;
}

const run = (exporter: OtlpMetricExporter, metrics: ResourceMetrics) =>
  new Promise<ExportResult>((resolve) => exporter.export(metrics, resolve));

t.test('exports through the transport; collector errors are FAILED; shutdown closes and refuses', async (t) => {
  // The receiver answers metrics calls through `verify` only: the second call is refused.
  const answers: (ExportAnswer | undefined)[] = [undefined, { kind: 'error', code: grpc.status.UNAVAILABLE, details: 'down' }];
  let calls = 0;
  const receiver = await new OtlpReceiver({ verify: () => answers[calls++] }).start();
  t.teardown(() => receiver.stop());
  const outcomes: ExportOutcome[] = [];
  const exporter = new OtlpMetricExporter(createTransport(endpointSettings('m', receiver.url), {}, undefined, 'metrics'), {
    timeoutMs: 5000,
    temporality: 'cumulative',
    onExport: (o) => outcomes.push(o),
  });

  t.same(await run(exporter, await collected(4)), { code: ExportResultCode.SUCCESS });
  t.match(receiver.metrics.of('ci_jobs', { status: 'success' }), [
    { kind: 'sum', value: 4, temporality: TEMPORALITY.cumulative, resource: { 'service.name': 'svc' } },
  ]);

  const failed = await run(exporter, await collected(1));
  t.equal(failed.code, ExportResultCode.FAILED);
  t.match(failed.error?.message, /^UNAVAILABLE: /);
  t.match(outcomes, [{ kind: 'ok' }, { kind: 'error', code: 'UNAVAILABLE' }], 'every outcome reaches the listener');

  await exporter.forceFlush();
  await exporter.shutdown();
  const after = await run(exporter, await collected(1));
  t.equal(after.code, ExportResultCode.FAILED);
  t.match(after.error?.message, /shut down/);
  t.equal(receiver.metrics.exports.length, 1, 'nothing sent after shutdown');
});

t.test('temporality follows the preference per instrument kind', async (t) => {
  const noTransport = { export: () => Promise.resolve({ kind: 'ok' } as const), close: () => undefined };
  const delta = new OtlpMetricExporter(noTransport, { timeoutMs: 1000, temporality: 'delta' });
  t.equal(delta.selectAggregationTemporality(InstrumentType.COUNTER), AggregationTemporality.DELTA);
  t.equal(delta.selectAggregationTemporality(InstrumentType.UP_DOWN_COUNTER), AggregationTemporality.CUMULATIVE);
  const cumulative = new OtlpMetricExporter(noTransport, { timeoutMs: 1000, temporality: 'cumulative' });
  t.equal(cumulative.selectAggregationTemporality(InstrumentType.COUNTER), AggregationTemporality.CUMULATIVE);
});
