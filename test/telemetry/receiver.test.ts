import t from 'tap';
import { credentials, status } from '@grpc/grpc-js';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OtlpReceiver } from '../../src/telemetry/receiver.js';
import { SpanKind, SpanStatusCode, toReadableSpan, type SpanRecord } from '../../src/telemetry/spans.js';

function exportOnce(url: string, span: SpanRecord): Promise<{ code: number; error?: Error }> {
  const exporter = new OTLPTraceExporter({ url, credentials: credentials.createInsecure() });
  const resource = resourceFromAttributes({ 'service.name': 'test' });
  return new Promise((resolve) => exporter.export([toReadableSpan(span, resource)], resolve)).finally(() =>
    exporter.shutdown(),
  ) as Promise<{ code: number; error?: Error }>;
}

const span: SpanRecord = {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: '00f067aa0ba902b7',
  parentSpanId: 'b7ad6b7169203331',
  parentIsRemote: true,
  name: 'job_execution',
  kind: SpanKind.INTERNAL,
  startTimeUnixNano: 1_700_000_000_123_456_789n,
  endTimeUnixNano: 1_700_000_042_000_000_001n,
  attributes: { 'ci.job.id': 42, 'ci.job.status': 'failed', ok: true },
  status: { code: SpanStatusCode.ERROR, message: 'script_failure' },
};

t.test('decodes what the OTel exporter sends, ids and nanoseconds exact', async (t) => {
  const receiver = await new OtlpReceiver().start();
  t.teardown(() => receiver.stop());
  const result = await exportOnce(receiver.url, span);
  t.equal(result.code, 0);
  t.equal(receiver.spans.length, 1);
  const got = receiver.spans[0]!;
  t.match(got, {
    traceId: span.traceId,
    spanId: span.spanId,
    parentSpanId: span.parentSpanId,
    name: 'job_execution',
    kind: 1, // OTLP SPAN_KIND_INTERNAL
    attributes: { 'ci.job.id': 42, 'ci.job.status': 'failed', ok: true },
    status: { code: 2, message: 'script_failure' },
    resource: { 'service.name': 'test' },
  });
  t.equal(got.startTimeUnixNano, span.startTimeUnixNano);
  t.equal(got.endTimeUnixNano, span.endTimeUnixNano);
  t.equal(got.flags & 0x300, 0x300, 'remote parent flagged');
});

t.test('answers errors and partial success as configured', async (t) => {
  const receiver = await new OtlpReceiver({
    behaviour: (_c, i) =>
      i === 0
        ? { kind: 'error', code: status.UNAVAILABLE, details: 'busy', retryDelayMs: 1500 }
        : { kind: 'partial', rejectedSpans: 1, message: 'nope' },
  }).start();
  t.teardown(() => receiver.stop());
  const first = await exportOnce(receiver.url, span);
  t.equal(first.code, 1);
  t.equal((first.error as Error & { code?: number }).code, status.UNAVAILABLE);
  t.equal(receiver.spans.length, 0, 'refused spans are not recorded');
  const second = await exportOnce(receiver.url, span);
  t.equal(second.code, 0, 'the JS exporter reports partial success as success');
  t.equal(receiver.calls.length, 2);
  t.equal(receiver.spans.length, 0, 'the rejected span is not recorded');
});
