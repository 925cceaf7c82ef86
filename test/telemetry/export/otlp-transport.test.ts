// otlp-transport.ts: the body every transport sends (serializeSpans) and the
// ExportTraceServiceResponse every transport reads back (parseExportResponse).
// Pure; decoded with the receiver's proto types, encoded with otlp-proto.ts.
import t from 'tap';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { parseExportResponse, serializeSpans } from '../../../src/telemetry/export/otlp-transport.js';
import { encodePartialSuccess, otlpTypes } from '../../../src/telemetry/otlp-proto.js';
import { newSpanId, SpanKind, SpanStatusCode, toReadableSpan } from '../../../src/telemetry/spans.js';

t.test('serializeSpans: one ExportTraceServiceRequest holding every span', async (t) => {
  const resource = resourceFromAttributes({ 'service.name': 'svc' });
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  const ids = [newSpanId(), newSpanId(), newSpanId()];
  const spans = ids.map((spanId, i) =>
    toReadableSpan(
      {
        traceId,
        spanId,
        name: `s${i}`,
        kind: SpanKind.INTERNAL,
        startTimeUnixNano: 1n,
        endTimeUnixNano: 2n,
        attributes: {},
        status: { code: SpanStatusCode.UNSET },
      },
      resource,
    ),
  );
  const body = serializeSpans(spans);
  t.ok(Buffer.isBuffer(body));
  const { ExportTraceServiceRequest } = otlpTypes();
  const msg = ExportTraceServiceRequest.decode(body) as unknown as {
    resourceSpans: { scopeSpans: { scope: { name: string }; spans: { spanId: Uint8Array; name: string }[] }[] }[];
  };
  const decoded = msg.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
  t.same(
    decoded.map((s) => [Buffer.from(s.spanId).toString('hex'), s.name]),
    ids.map((id, i) => [id, `s${i}`]),
  );
  t.equal(msg.resourceSpans[0]!.scopeSpans[0]!.scope.name, 'gitlab-otel');
});

t.test('parseExportResponse: empty or partial_success without content is success; otherwise partial', async (t) => {
  t.same(parseExportResponse(Buffer.alloc(0)), { kind: 'ok' });
  t.same(parseExportResponse(encodePartialSuccess(0, '')), { kind: 'ok' });
  t.same(parseExportResponse(encodePartialSuccess(5, 'span too old')), { kind: 'partial', rejectedSpans: 5, message: 'span too old' });
  t.same(parseExportResponse(encodePartialSuccess(0, 'a warning')), { kind: 'partial', rejectedSpans: 0, message: 'a warning' });
  t.same(parseExportResponse(encodePartialSuccess(2, '')), { kind: 'partial', rejectedSpans: 2, message: '' });
});
