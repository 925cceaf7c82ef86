// otlp-proto.ts: the opentelemetry-proto / google.rpc subset built from the
// upstream field numbers. Checked here against the OpenTelemetry SDK's own
// serializer (an independent encoder of the same .proto), and the RetryInfo and
// partial-success helpers round-trip.
import t from 'tap';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  decodeRetryDelayMs,
  encodePartialSuccess,
  encodeRetryInfoStatus,
  otlpTypes,
  RETRY_INFO_TYPE_URL,
} from '../../src/telemetry/otlp-proto.js';
import { SpanKind, SpanStatusCode, toReadableSpan } from '../../src/telemetry/spans.js';

t.test('a request encoded by the SDK serializer decodes field for field', async (t) => {
  const span = toReadableSpan(
    {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      parentSpanId: '00f067aa0ba902b7',
      name: 'stage',
      kind: SpanKind.INTERNAL,
      startTimeUnixNano: 1_700_000_000_000_000_001n,
      endTimeUnixNano: 1_700_000_001_000_000_002n,
      attributes: { 'ci.job.id': 42, 'ci.job.name': 'build', 'ci.cache.hit': true, 'ci.ratio': 0.5 },
      status: { code: SpanStatusCode.ERROR, message: 'boom' },
    },
    resourceFromAttributes({ 'service.name': 'svc' }),
  );
  const bytes = ProtobufTraceSerializer.serializeRequest([span])!;
  const { ExportTraceServiceRequest } = otlpTypes();
  const msg = ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(bytes), { longs: String }) as {
    resourceSpans: {
      resource: { attributes: { key: string; value: { stringValue?: string } }[] };
      scopeSpans: {
        spans: {
          traceId: Uint8Array;
          spanId: Uint8Array;
          parentSpanId: Uint8Array;
          name: string;
          startTimeUnixNano: string;
          endTimeUnixNano: string;
          attributes: { key: string; value: Record<string, unknown> }[];
          status: { code: number; message: string };
        }[];
      }[];
    }[];
  };
  const rs = msg.resourceSpans[0]!;
  t.same(rs.resource.attributes.find((a) => a.key === 'service.name')?.value, { stringValue: 'svc' });
  const s = rs.scopeSpans[0]!.spans[0]!;
  t.equal(Buffer.from(s.traceId).toString('hex'), '0af7651916cd43dd8448eb211c80319c');
  t.equal(Buffer.from(s.spanId).toString('hex'), 'b7ad6b7169203331');
  t.equal(Buffer.from(s.parentSpanId).toString('hex'), '00f067aa0ba902b7');
  t.equal(s.name, 'stage');
  t.equal(s.startTimeUnixNano, '1700000000000000001');
  t.equal(s.endTimeUnixNano, '1700000001000000002');
  t.same(s.status, { code: 2, message: 'boom' });
  const attrs = Object.fromEntries(s.attributes.map((a) => [a.key, a.value]));
  t.same(attrs['ci.job.name'], { stringValue: 'build' });
  t.same(attrs['ci.job.id'], { intValue: '42' });
  t.same(attrs['ci.cache.hit'], { boolValue: true });
  t.same(attrs['ci.ratio'], { doubleValue: 0.5 });
});

t.test('RetryInfo in grpc-status-details-bin round-trips, milliseconds included', async (t) => {
  t.equal(decodeRetryDelayMs(encodeRetryInfoStatus(14, 'busy', 2500)), 2500);
  t.equal(decodeRetryDelayMs(encodeRetryInfoStatus(14, 'busy', 0)), 0);
  const { RpcStatus } = otlpTypes();
  const status = RpcStatus.decode(encodeRetryInfoStatus(8, 'slow down', 1000)) as unknown as {
    code: number;
    message: string;
    details: { typeUrl: string }[];
  };
  t.equal(status.code, 8);
  t.equal(status.message, 'slow down');
  t.equal(status.details[0]!.typeUrl, RETRY_INFO_TYPE_URL);
  const other = Buffer.from(
    RpcStatus.encode(RpcStatus.create({ code: 14, details: [{ typeUrl: 'type.googleapis.com/x', value: Buffer.from([8, 1]) }] })).finish(),
  );
  t.equal(decodeRetryDelayMs(other), undefined, 'a detail of another type is not a retry delay');
  t.equal(decodeRetryDelayMs(Buffer.alloc(0)), undefined);
});

t.test('partial success encodes rejected spans and the message', async (t) => {
  const { ExportTraceServiceResponse } = otlpTypes();
  const decoded = ExportTraceServiceResponse.toObject(ExportTraceServiceResponse.decode(encodePartialSuccess(3, 'too old')), {
    longs: Number,
  });
  t.same(decoded, { partialSuccess: { rejectedSpans: 3, errorMessage: 'too old' } });
});
