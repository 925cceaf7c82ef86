// Encode once (docs/export.md#encode-once): a group is serialised once per
// chunk size and shared by every endpoint that asks (or kept as records, with
// an estimate of its size, for an endpoint alone with it); concatenated group
// encodings decode as one ExportTraceServiceRequest with every group's
// resource and spans; a pipeline with two endpoints delivers one encoding to
// both, batching several groups into one Export call, counts in spans.
import t from 'tap';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { Registry } from 'prom-client';
import { batchBody, encodeSpans, estimateSpanBytes, SpanGroup } from '../../../src/telemetry/export/span-group.js';
import { decodeExportRequest, OtlpHttpReceiver, OtlpReceiver } from '../../../src/telemetry/receiver.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { endpointSettings, makeSpans, metric } from '../../support/export.js';

const res = (name: string) => resourceFromAttributes({ 'service.name': name });

t.test('concatenated group encodings are one request: every resource with its own spans, in order', async (t) => {
  const a = makeSpans(2);
  const b = makeSpans(3);
  const body = batchBody([encodeSpans(a, res('a')), encodeSpans(b, res('b'))]);
  const spans = decodeExportRequest(body);
  t.same(
    spans.map((s) => [s.spanId, s.resource['service.name']]),
    [...a.map((s) => [s.spanId, 'a']), ...b.map((s) => [s.spanId, 'b'])],
  );
  const one = encodeSpans(a, res('a'));
  t.equal(batchBody([one]), one.body, 'a single group is sent as it is, not copied');
});

t.test('a group is encoded once per chunk size; a group that fits is one piece for every batch size', async (t) => {
  const g = new SpanGroup(makeSpans(15), res('job'));
  const forLarge = g.pieces(512, true);
  t.equal(forLarge.length, 1);
  t.equal(forLarge[0]!.spans, 15);
  const body = 'body' in forLarge[0]! ? forLarge[0].body : undefined;
  t.ok(body, 'encoded');
  t.equal(forLarge[0]!.bytes, body!.length, 'counted at its encoded size');
  const other = g.pieces(100, true)[0]!;
  t.equal('body' in other ? other.body : undefined, body, 'the same bytes for an endpoint with another batch size');
  const small = g.pieces(4, true);
  t.same(
    small.map((c) => c.spans),
    [4, 4, 4, 3],
  );
  t.equal(g.chunks(4), g.chunks(4), 'memoised');
  t.same(
    decodeExportRequest(batchBody(small)).map((s) => s.spanId),
    g.spans.map((s) => s.spanId),
    'pieces hold the spans in order',
  );
});

t.test('kept as records: pieces counted at the estimate, serialised with their batch, mixed with encoded ones', async (t) => {
  const g = new SpanGroup(makeSpans(10), res('records'));
  const pieces = g.pieces(4, false);
  t.same(
    pieces.map((p) => [p.spans, 'records' in p]),
    [
      [4, true],
      [4, true],
      [2, true],
    ],
  );
  t.equal(
    pieces.reduce((n, p) => n + p.bytes, 0),
    g.spans.reduce((n, s) => n + estimateSpanBytes(s), 0),
  );
  const other = new SpanGroup(makeSpans(2), res('encoded'));
  const spans = decodeExportRequest(batchBody([...pieces, ...other.pieces(512, true)]));
  t.same(
    spans.map((s) => `${s.spanId} ${String(s.resource['service.name'])}`).sort(),
    [...g.spans.map((s) => `${s.spanId} records`), ...other.spans.map((s) => `${s.spanId} encoded`)].sort(),
  );
});

t.test('prefix: the most spans that fit the room left, encoded or estimated', async (t) => {
  const g = new SpanGroup(makeSpans(10), res('job'));
  const one = estimateSpanBytes(g.spans[0]!);
  const est = g.prefix(2, 8, 3 * one + 1, false);
  t.equal(est?.spans, 3);
  t.ok(est && 'records' in est && est.records[0] === g.spans[2], 'from the offset asked for');
  t.equal(g.prefix(0, 8, one - 1, false), undefined, 'not even one span');
  const whole = g.pieces(512, true)[0]!.bytes;
  const enc = g.prefix(0, 10, Math.floor(whole / 2), true);
  t.ok(enc && enc.spans > 0 && enc.spans < 10 && enc.bytes <= whole / 2, `${enc?.spans} spans in ${enc?.bytes} bytes`);
  t.same(
    decodeExportRequest('body' in enc! ? enc.body : Buffer.alloc(0)).map((s) => s.spanId),
    g.spans.slice(0, enc!.spans).map((s) => s.spanId),
  );
});

t.test('estimateSpanBytes grows with names, attribute keys and values, and the status message', async (t) => {
  const [s] = makeSpans(1);
  const base = estimateSpanBytes({ ...s!, attributes: {} });
  t.ok(base > 0);
  t.equal(estimateSpanBytes({ ...s!, attributes: {}, name: `${s!.name}xxxx` }), base + 4);
  t.equal(estimateSpanBytes({ ...s!, attributes: { k: 'v'.repeat(50) } }), base + 1 + 8 + 50);
  t.equal(estimateSpanBytes({ ...s!, attributes: { k: ['ab', 'c'] } }), base + 1 + 8 + 4 + 3);
  t.equal(estimateSpanBytes({ ...s!, attributes: { k: 7 } }), base + 1 + 8 + 9);
  t.equal(estimateSpanBytes({ ...s!, attributes: {}, status: { code: 2, message: 'boom' } }), base + 4);
});

t.test('one group to two endpoints (gRPC and HTTP): both receive it; several groups go out as one Export call', async (t) => {
  const grpc = await new OtlpReceiver().start();
  const http = await new OtlpHttpReceiver().start();
  t.teardown(async () => {
    await grpc.stop();
    await http.stop();
  });
  const registry = new Registry();
  const slow = { queue: { ...endpointSettings('x', 'http://127.0.0.1:1').queue, batchDelayMs: 60_000, batchSize: 40 } };
  const g = endpointSettings('g', grpc.url, slow);
  const h = endpointSettings('h', http.url, { ...slow, protocol: 'http/protobuf' });
  const pipeline = await ExportPipeline.create({ endpoints: [g, h], metrics: createExportMetrics(registry), log: () => undefined });
  t.teardown(() => pipeline.shutdown(500));
  const groups = [makeSpans(15), makeSpans(15), makeSpans(15)];
  groups.forEach((spans, i) => pipeline.submit(spans, res(`job-${i}`), [g, h]));
  await pipeline.flush(5000);
  for (const [name, r] of [
    ['gRPC', grpc],
    ['HTTP', http],
  ] as const) {
    // Two exports may be in flight at once: which lands first is not asserted.
    t.same(
      r.spans.map((s) => `${s.spanId} ${String(s.resource['service.name'])}`).sort(),
      groups.flatMap((spans, i) => spans.map((s) => `${s.spanId} job-${i}`)).sort(),
      `${name}: every span once, with its group's resource`,
    );
    t.same(
      r.calls.map((c) => c.spans.length).sort((a, b) => a - b),
      [15, 30],
      `${name}: whole groups up to batch_size 40 per call`,
    );
  }
  t.equal(await metric(registry, 'gitlab_otel_spans_exported_total', { endpoint: 'g' }), 45, 'counted in spans');
  t.equal(await metric(registry, 'gitlab_otel_spans_exported_total', { endpoint: 'h' }), 45);
});

t.test('a group larger than batch_size is sent in batch_size chunks', async (t) => {
  const grpc = await new OtlpReceiver().start();
  t.teardown(() => grpc.stop());
  const ep = endpointSettings('g', grpc.url, { queue: { ...endpointSettings('x', 'http://127.0.0.1:1').queue, batchSize: 10 } });
  const pipeline = await ExportPipeline.create({ endpoints: [ep], metrics: createExportMetrics(new Registry()), log: () => undefined });
  t.teardown(() => pipeline.shutdown(500));
  const spans = makeSpans(25);
  pipeline.submit(spans, res('big'), [ep]);
  await pipeline.flush(5000);
  t.same(
    grpc.calls.map((c) => c.spans.length).sort((a, b) => a - b),
    [5, 10, 10],
  );
  t.same(grpc.spans.map((s) => s.spanId).sort(), spans.map((s) => s.spanId).sort(), 'every span once');
});
