// export/otlp-client.ts: createTransport picks the transport by the endpoint's
// protocol and the gRPC method by the signal (docs/export.md#transports). Each
// choice is checked by what a real loopback receiver got.
import t from 'tap';
import { createTransport } from '../../../src/telemetry/export/otlp-client.js';
import { serializeSpans } from '../../../src/telemetry/export/otlp-transport.js';
import { otlpTypes } from '../../../src/telemetry/otlp-proto.js';
import { OtlpHttpReceiver, OtlpReceiver } from '../../../src/telemetry/receiver.js';
import { toReadableSpan } from '../../../src/telemetry/spans.js';
import { endpointSettings, makeSpans, resource } from '../../support/export.js';

const traces = (n: number) => serializeSpans(makeSpans(n).map((s) => toReadableSpan(s, resource)));

/** A one-gauge ExportMetricsServiceRequest, encoded with the receiver's own proto types. */
function metricsBody(): Buffer {
  const { ExportMetricsServiceRequest } = otlpTypes();
  return Buffer.from(
    ExportMetricsServiceRequest.encode(
      ExportMetricsServiceRequest.create({
        resourceMetrics: [
          {
            resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] },
            scopeMetrics: [{ metrics: [{ name: 'queue_depth', unit: '1', gauge: { dataPoints: [{ asDouble: 7, timeUnixNano: 1 }] } }] }],
          },
        ],
      }),
    ).finish(),
  );
}

t.test('no protocol: OTLP/gRPC; the metrics signal calls MetricsService/Export on the same channel settings', async (t) => {
  const receiver = await new OtlpReceiver().start();
  t.teardown(() => receiver.stop());
  const settings = endpointSettings('g', receiver.url);
  const tr = createTransport(settings);
  t.teardown(() => tr.close());
  t.equal(tr.protocol, 'grpc');
  t.same(await tr.export(traces(2), 5000), { kind: 'ok' });
  t.equal(receiver.spans.length, 2);
  t.equal(receiver.metrics.points.length, 0);

  const mt = createTransport(settings, {}, undefined, 'metrics');
  t.teardown(() => mt.close());
  t.same(await mt.export(metricsBody(), 5000), { kind: 'ok' });
  t.match(receiver.metrics.of('queue_depth'), [{ kind: 'gauge', value: 7, resource: { 'service.name': 'svc' } }]);
  t.equal(receiver.spans.length, 2, 'no spans from the metrics call');
});

t.test('http/protobuf: OTLP/HTTP to the URL as given', async (t) => {
  const receiver = await new OtlpHttpReceiver().start();
  t.teardown(() => receiver.stop());
  const tr = createTransport(endpointSettings('h', receiver.url, { protocol: 'http/protobuf' }));
  t.teardown(() => tr.close());
  t.equal(tr.protocol, 'http/protobuf');
  t.same(await tr.export(traces(3), 5000), { kind: 'ok' });
  t.equal(receiver.spans.length, 3);
});

t.test('an endpoint that cannot be used throws EndpointConfigError before any call', async (t) => {
  t.throws(() => createTransport(endpointSettings('bad', 'not a url')), { name: 'EndpointConfigError', code: 'INVALID_ENDPOINT_URL' });
});
