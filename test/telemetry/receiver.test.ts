import t from 'tap';
import { credentials, status } from '@grpc/grpc-js';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { decodeExportRequest, exportRequestSpanIds, OtlpHttpReceiver, OtlpReceiver } from '../../src/telemetry/receiver.js';
import { OTLPTraceExporter as OTLPHttpTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { gzipSync } from 'node:zlib';
import { parseExportResponse, serializeSpans } from '../../src/telemetry/export/otlp-client.js';
import { newSpanId, SpanKind, SpanStatusCode, toReadableSpan, type SpanRecord } from '../../src/telemetry/spans.js';
import { encodeResourceSpans } from '../../src/telemetry/export/span-encoder.js';

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

// ---- OTLP/HTTP receiver ----

const protobufBody = (): Buffer => serializeSpans([toReadableSpan(span, resourceFromAttributes({ 'service.name': 'test' }))]);

function post(url: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; headers: Headers; body: Buffer }> {
  return fetch(url, { method: 'POST', body, headers, signal: AbortSignal.timeout(5000) }).then(async (r) => ({
    status: r.status,
    headers: r.headers,
    body: Buffer.from(await r.arrayBuffer()),
  }));
}

t.test('OTLP/HTTP: decodes what the stock OTLP/HTTP (protobuf) exporter sends', async (t) => {
  const receiver = await new OtlpHttpReceiver().start();
  t.teardown(() => receiver.stop());
  const exporter = new OTLPHttpTraceExporter({ url: receiver.url });
  const result = await new Promise<{ code: number }>((resolve) =>
    exporter.export([toReadableSpan(span, resourceFromAttributes({ 'service.name': 'test' }))], resolve),
  );
  await exporter.shutdown();
  t.equal(result.code, 0);
  t.same(receiver.refusals, []);
  t.equal(receiver.spans.length, 1);
  t.match(receiver.spans[0], { traceId: span.traceId, spanId: span.spanId, name: 'job_execution', resource: { 'service.name': 'test' } });
  t.equal(receiver.spans[0]!.startTimeUnixNano, span.startTimeUnixNano);
});

t.test('OTLP/HTTP: checks Content-Type, Content-Encoding, path and the protobuf body on every request', async (t) => {
  const receiver = await new OtlpHttpReceiver().start();
  t.teardown(() => receiver.stop());
  const body = protobufBody();
  const ok = await post(receiver.url, gzipSync(body), {
    'content-type': 'application/x-protobuf',
    'content-encoding': 'gzip',
    authorization: 'Bearer abc',
  });
  t.equal(ok.status, 200);
  t.equal(ok.headers.get('content-type'), 'application/x-protobuf');
  t.same(parseExportResponse(ok.body), { kind: 'ok' }, 'an empty ExportTraceServiceResponse');
  t.equal(receiver.calls[0]!.authorization, 'Bearer abc', 'Authorization recorded');
  t.equal(receiver.calls[0]!.contentEncoding, 'gzip');

  const cases: [string, () => Promise<{ status: number }>, number, RegExp][] = [
    ['JSON content type', () => post(receiver.url, body, { 'content-type': 'application/json' }), 415, /Content-Type application\/json/],
    ['no content type', () => post(receiver.url, body, {}), 415, /Content-Type/],
    [
      'gzip header, plain body',
      () => post(receiver.url, body, { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' }),
      400,
      /gunzip/,
    ],
    [
      'unknown encoding',
      () => post(receiver.url, body, { 'content-type': 'application/x-protobuf', 'content-encoding': 'br' }),
      415,
      /Encoding br/,
    ],
    [
      'not protobuf',
      () => post(receiver.url, Buffer.from('{"resourceSpans":[]}'), { 'content-type': 'application/x-protobuf' }),
      400,
      /undecodable/,
    ],
    [
      'wrong path',
      () => post(receiver.url.replace('/v1/traces', '/v1/logs'), body, { 'content-type': 'application/x-protobuf' }),
      404,
      /path/,
    ],
  ];
  for (const [what, reply, status, reason] of cases) {
    t.equal((await reply()).status, status, what);
    t.match(receiver.refusals.at(-1), { status, reason }, what);
  }
  t.equal(receiver.calls.length, 1, 'refused requests are not calls');
  const small = await new OtlpHttpReceiver({ maxBodyBytes: 1024 }).start();
  t.teardown(() => small.stop());
  const big = Buffer.alloc(4096, 0x0a);
  t.equal((await post(small.url, big, { 'content-type': 'application/x-protobuf' })).status, 413, 'over the limit');
  t.equal(
    (await post(small.url, gzipSync(big), { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' })).status,
    413,
    'over the limit once gunzipped (a small gzip bomb)',
  );
  t.match(small.refusals, [{ status: 413 }, { status: 413, reason: /once gunzipped/ }]);
  t.equal(receiver.spans.length, 1);
});

t.test('OTLP/HTTP: answers throttling with Retry-After, and partial success in the body', async (t) => {
  const retryDate = new Date(Date.now() + 60_000).toUTCString();
  const receiver = await new OtlpHttpReceiver({
    behaviour: (_c, i) =>
      i === 0
        ? { kind: 'status', status: 429, retryAfter: '7' }
        : i === 1
          ? { kind: 'status', status: 503, retryAfter: retryDate }
          : { kind: 'partial', rejectedSpans: 1, message: 'bad span' },
  }).start();
  t.teardown(() => receiver.stop());
  const headers = { 'content-type': 'application/x-protobuf' };
  const first = await post(receiver.url, protobufBody(), headers);
  t.equal(first.status, 429);
  t.equal(first.headers.get('retry-after'), '7');
  const second = await post(receiver.url, protobufBody(), headers);
  t.equal(second.status, 503);
  t.equal(second.headers.get('retry-after'), retryDate);
  const third = await post(receiver.url, protobufBody(), headers);
  t.equal(third.status, 200);
  t.same(parseExportResponse(third.body), { kind: 'partial', rejectedSpans: 1, message: 'bad span' });
  t.equal(receiver.spans.length, 0, 'throttled and rejected spans are not recorded');
});

t.test('exportRequestSpanIds: every span id, in order, as the full decoder finds them; a broken body throws', async (t) => {
  const a = resourceFromAttributes({ 'service.name': 'a', nested: 'x' });
  const b = resourceFromAttributes({ 'service.name': 'b' });
  const spans = (n: number): SpanRecord[] =>
    Array.from({ length: n }, (_, i) => ({ ...span, spanId: newSpanId(), attributes: { i, list: ['a', 'b'], ok: true } }));
  // Two requests back to back (how batches of encoded groups are sent) with two resources in the first.
  const body = Buffer.concat([
    encodeResourceSpans([
      { records: spans(3), resource: a },
      { records: spans(2), resource: b },
    ]),
    serializeSpans(spans(4).map((s) => toReadableSpan(s, a))),
  ]);
  const ids = exportRequestSpanIds(body);
  t.equal(ids.length, 9);
  t.same(
    ids,
    decodeExportRequest(body).map((s) => s.spanId),
  );
  t.same(exportRequestSpanIds(Buffer.alloc(0)), [], 'an empty request has no spans');
  t.throws(() => exportRequestSpanIds(body.subarray(0, body.length - 3)), 'a cut-off request throws');
});
