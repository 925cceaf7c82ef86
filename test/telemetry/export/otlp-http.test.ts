// OTLP/HTTP export end to end: the real ExportPipeline (queue, batching, retry
// loop, metrics) posting to the real OTLP/HTTP receiver on loopback, which
// decodes every body as an ExportTraceServiceRequest and refuses anything that
// breaks the protocol (wrong Content-Type, bad gzip, undecodable protobuf).
import t, { type Test } from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { OtlpHttpReceiver, type HttpBehaviour, type HttpReceiverOptions } from '../../../src/telemetry/receiver.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { recordEvents, type LogEvent } from '../../support/memory-logger.js';
import { endpointFromPayload, type EndpointSettings } from '../../../src/telemetry/export/settings.js';
import type { TokenSource } from '../../../src/telemetry/auth/token.js';
import { exportJobSpans, planJobExport } from '../../../src/in-job/job-export.js';
import { endpointSettings, eventually, makeSpans, metric, resource } from '../../support/export.js';
import { caSignedCertificate, loopbackCertificate, testCa } from '../../support/tls.js';
import { startMetadataServer } from '../../support/gcp-metadata.js';

const http = (url: string, over: Partial<EndpointSettings> = {}): EndpointSettings =>
  endpointSettings('primary', url, { protocol: 'http/protobuf', ...over });

async function setup(
  t: Test,
  behaviour: HttpBehaviour = () => ({ kind: 'ok' }),
  over: Partial<EndpointSettings> = {},
  receiverOptions: HttpReceiverOptions = {},
  tokenSource?: TokenSource,
) {
  const receiver = await new OtlpHttpReceiver({ behaviour, ...receiverOptions }).start();
  const registry = new Registry();
  const logs: LogEvent[] = [];
  const ep = http(receiver.url, over);
  const pipeline = await ExportPipeline.create({
    endpoints: [ep],
    metrics: createExportMetrics(registry),
    log: recordEvents(logs),
    ...(tokenSource ? { tokenSources: { primary: tokenSource } } : {}),
  });
  t.teardown(async () => {
    await pipeline.shutdown(1000);
    await receiver.stop();
  });
  return { receiver, registry, logs, ep, pipeline };
}

t.test('spans arrive as protobuf, gzipped when compression is gzip, identity otherwise', async (t) => {
  for (const compression of ['gzip', 'none'] as const) {
    const { receiver, registry, ep, pipeline } = await setup(t, undefined, { compression });
    const spans = makeSpans(12);
    pipeline.submit(spans, resource, [ep]);
    await receiver.waitForSpans(12, 10_000);
    await pipeline.flush(2000);
    t.same(receiver.refusals, [], `${compression}: no request broke the protocol`);
    t.same(new Set(receiver.spans.map((s) => s.spanId)), new Set(spans.map((s) => s.spanId)), `${compression}: every span, once`);
    t.equal(receiver.spans.length, 12);
    for (const call of receiver.calls) {
      t.equal(call.headers['content-type'], 'application/x-protobuf');
      t.equal(call.contentEncoding, compression === 'gzip' ? 'gzip' : 'identity');
      t.match(call.headers['user-agent'], /^gitlab-otel\//);
    }
    t.match(receiver.spans[0], { resource: { 'service.name': 'gitlab-otel-test' }, attributes: { 'ci.job.id': 7 } });
    t.equal(await metric(registry, 'gitlab_otel_spans_exported_total', { endpoint: 'primary' }), 12);
    t.equal(pipeline.health()[0]!.state, 'up');
  }
});

t.test('429, 502, 503 and 504 are retried and the spans arrive exactly once', async (t) => {
  const statuses = [429, 502, 503, 504];
  const { receiver, registry, logs, ep, pipeline } = await setup(t, (_c, i) =>
    i < statuses.length ? { kind: 'status', status: statuses[i]! } : { kind: 'ok' },
  );
  pipeline.submit(makeSpans(5), resource, [ep]);
  await receiver.waitForSpans(5, 15_000);
  await pipeline.flush(2000);
  t.equal(receiver.calls.length, 5, 'four refusals, one success');
  t.equal(receiver.spans.length, 5, 'no duplicates');
  t.equal(await metric(registry, 'gitlab_otel_spans_retried_total', { endpoint: 'primary' }), 20);
  t.equal(await metric(registry, 'gitlab_otel_spans_exported_total', { endpoint: 'primary' }), 5);
  t.same(
    logs.filter((l) => l.event === 'endpoint_state').map((l) => [l.to, l.reason]),
    [
      ['failing', 'HTTP_429'],
      ['up', undefined],
    ],
    'one log line per state change, the status as a stable code',
  );
});

t.test('Retry-After in seconds is honoured', async (t) => {
  const { receiver, ep, pipeline } = await setup(t, (_c, i) =>
    i === 0 ? { kind: 'status', status: 503, retryAfter: '1' } : { kind: 'ok' },
  );
  pipeline.submit(makeSpans(3), resource, [ep]);
  await receiver.waitForSpans(3, 10_000);
  t.equal(receiver.calls.length, 2);
  const gap = receiver.calls[1]!.at - receiver.calls[0]!.at;
  t.ok(gap >= 1000, `retry came ${gap} ms after the 503 asking for 1 s (receiver clock)`);
});

t.test('Retry-After as an HTTP date is honoured', async (t) => {
  let notBefore = 0;
  const { receiver, ep, pipeline } = await setup(t, (_c, i) => {
    if (i > 0) return { kind: 'ok' };
    // A whole second at least 1 s ahead: HTTP dates have no fraction.
    notBefore = (Math.floor(Date.now() / 1000) + 2) * 1000;
    return { kind: 'status', status: 429, retryAfter: new Date(notBefore).toUTCString() };
  });
  pipeline.submit(makeSpans(2), resource, [ep]);
  await receiver.waitForSpans(2, 10_000);
  t.equal(receiver.calls.length, 2);
  t.ok(receiver.calls[1]!.at >= notBefore, `retried at ${receiver.calls[1]!.at}, not before the date ${notBefore}`);
});

t.test('a Retry-After beyond the batch max_age drops the batch (max_age) instead of holding the export slot', async (t) => {
  const { receiver, registry, ep, pipeline } = await setup(t, () => ({ kind: 'status', status: 503, retryAfter: '3600' }), {
    queue: { maxSpans: 100, maxBytes: 1 << 20, maxAgeMs: 400, batchSize: 10, batchDelayMs: 10, maxConcurrentExports: 1 },
  });
  pipeline.submit(makeSpans(3), resource, [ep]);
  await eventually(
    async () => (await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'max_age' })) === 3,
    5000,
    'dropped as max_age, long before the hour the collector asked for',
  );
  t.equal(receiver.calls.length, 1, 'not retried within the batch age');
  t.equal(pipeline.health()[0]!.queueSpans, 0, 'the export slot is free again');
});

t.test('400 and other non-retryable statuses are dropped at once and counted', async (t) => {
  const { receiver, registry, ep, pipeline } = await setup(t, (_c, i) =>
    i === 0 ? { kind: 'status', status: 400, message: 'bad data' } : { kind: 'status', status: 413 },
  );
  pipeline.submit(makeSpans(4), resource, [ep]);
  await eventually(
    async () => (await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'rejected' })) === 4,
    10_000,
    'drop counted',
  );
  pipeline.submit(makeSpans(3), resource, [ep]);
  await eventually(
    async () => (await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'rejected' })) === 7,
    10_000,
    'second drop counted',
  );
  t.equal(receiver.calls.length, 2, 'never retried');
  t.equal(receiver.spans.length, 0);
  t.equal(pipeline.health()[0]!.state, 'failing');
  t.equal(pipeline.health()[0]!.lastError, 'HTTP_413');
});

t.test('partial success is read from the response body, not retried, and its rejected spans counted', async (t) => {
  const { receiver, registry, logs, ep, pipeline } = await setup(t, () => ({
    kind: 'partial',
    rejectedSpans: 2,
    message: 'invalid span',
  }));
  pipeline.submit(makeSpans(6), resource, [ep]);
  await receiver.waitForSpans(4, 10_000);
  await pipeline.flush(2000);
  t.equal(receiver.calls.length, 1);
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'partial_success' }), 2);
  t.equal(await metric(registry, 'gitlab_otel_spans_exported_total'), 4);
  t.ok(logs.some((l) => l.event === 'partial_success' && l.rejected === 2));
});

t.test('a dropped connection and a collector past the deadline are retried', async (t) => {
  const { receiver, ep, pipeline } = await setup(
    t,
    (_c, i) => (i === 0 ? { kind: 'reset' } : i === 1 ? { kind: 'delay', ms: 800 } : { kind: 'ok' }),
    { timeoutMs: 200 },
  );
  pipeline.submit(makeSpans(3), resource, [ep]);
  await receiver.waitFor((s) => new Set(s.map((x) => x.spanId)).size === 3, 10_000);
  t.ok(receiver.calls.length >= 3, `${receiver.calls.length} calls`);
});

t.test('a kept-alive socket the collector closed is replaced at once: no failure counted, no backoff', async (t) => {
  const { receiver, registry, logs, ep, pipeline } = await setup(t, (_c, i) => (i === 1 ? { kind: 'reset' } : { kind: 'ok' }), {
    queue: { maxSpans: 100, maxBytes: 1 << 20, maxAgeMs: 60_000, batchSize: 100, batchDelayMs: 10, maxConcurrentExports: 1 },
  });
  pipeline.submit(makeSpans(2), resource, [ep]);
  await receiver.waitForSpans(2, 10_000);
  // The second export goes over the same kept-alive socket; the receiver drops it after reading the request.
  pipeline.submit(makeSpans(3), resource, [ep]);
  await receiver.waitForSpans(5, 10_000);
  t.equal(receiver.calls.length, 3, 'ok, reset, the same request again on a fresh socket');
  t.equal(receiver.spans.length, 5, 'each span once');
  t.equal(await metric(registry, 'gitlab_otel_spans_retried_total', { endpoint: 'primary' }), 0, 'not a retry of the pipeline');
  t.same(
    logs.filter((l) => l.event === 'endpoint_state').map((l) => l.to),
    ['up'],
    'never failing',
  );
});

t.test('a refused connection (no collector) is retried until it comes up', async (t) => {
  // Find a free port, then close it: the first exports meet ECONNREFUSED.
  const probe = await new OtlpHttpReceiver().start();
  const port = probe.port;
  await probe.stop();
  const registry = new Registry();
  const logs: LogEvent[] = [];
  const ep = http(`http://127.0.0.1:${port}/v1/traces`);
  const pipeline = await ExportPipeline.create({ endpoints: [ep], metrics: createExportMetrics(registry), log: recordEvents(logs) });
  t.teardown(() => pipeline.shutdown(1000));
  pipeline.submit(makeSpans(4), resource, [ep]);
  await eventually(() => pipeline.health()[0]!.state === 'failing', 10_000, 'failing');
  t.equal(pipeline.health()[0]!.lastError, 'ECONNREFUSED');
  const receiver = await new OtlpHttpReceiver({ port }).start();
  t.teardown(() => receiver.stop());
  await receiver.waitForSpans(4, 15_000);
  t.equal(receiver.spans.length, 4);
});

t.test('the bearer token goes as Authorization on every request, refreshed, and once more after a 401', async (t) => {
  let n = 0;
  const source: TokenSource = {
    kind: 'test',
    // Each token expires at once, so every export fetches a new one.
    fetch: () => Promise.resolve({ value: `tok-${++n}`, expiresAt: Date.now() - 1 }),
  };
  const { receiver, registry, ep, pipeline } = await setup(
    t,
    (c) => (c.authorization === 'Bearer tok-1' ? { kind: 'status', status: 401 } : { kind: 'ok' }),
    { queue: { maxSpans: 100, maxBytes: 1 << 20, maxAgeMs: 60_000, batchSize: 2, batchDelayMs: 10, maxConcurrentExports: 1 } },
    {},
    source,
  );
  pipeline.submit(makeSpans(6), resource, [ep]);
  await receiver.waitForSpans(6, 10_000);
  const auths = receiver.calls.map((c) => c.authorization);
  t.equal(auths[0], 'Bearer tok-1', 'the first request carries the first token');
  t.equal(new Set(auths).size, auths.length, `a fresh token on every request: ${auths.join(', ')}`);
  t.ok(
    auths.every((a) => /^Bearer tok-\d+$/.test(a ?? '')),
    'every request authenticated',
  );
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'unauthenticated' }), 0);
  t.equal(receiver.spans.length, 6);
});

t.test('a collector that keeps answering 401 gets one fresh token, then the batch is dropped as unauthenticated', async (t) => {
  let n = 0;
  const source: TokenSource = { kind: 'test', fetch: () => Promise.resolve({ value: `tok-${++n}` }) };
  const { receiver, registry, ep, pipeline } = await setup(t, () => ({ kind: 'status', status: 401 }), {}, {}, source);
  pipeline.submit(makeSpans(3), resource, [ep]);
  await eventually(
    async () => (await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'unauthenticated' })) === 3,
    10_000,
    'unauthenticated drop',
  );
  t.same(
    receiver.calls.map((c) => c.authorization),
    ['Bearer tok-1', 'Bearer tok-2'],
  );
});

t.test('a bearer token over plaintext HTTP to a non-loopback host is refused before anything is sent', async (t) => {
  const registry = new Registry();
  const logs: LogEvent[] = [];
  const source: TokenSource = { kind: 'test', fetch: () => Promise.resolve({ value: 'secret-token' }) };
  const ep = http('http://collector.example.invalid:4318/v1/traces');
  const pipeline = await ExportPipeline.create({
    endpoints: [ep],
    metrics: createExportMetrics(registry),
    log: recordEvents(logs),
    tokenSources: { primary: source },
  });
  t.teardown(() => pipeline.shutdown(500));
  pipeline.submit(makeSpans(2), resource, [ep]);
  t.equal(pipeline.health()[0]!.state, 'invalid');
  t.equal(pipeline.health()[0]!.lastError, 'INSECURE_AUTH_REFUSED');
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'endpoint_invalid' }), 2);
  t.notOk(JSON.stringify(logs).includes('secret-token'), 'the token is in no log line');
});

t.test('TLS with a custom CA and a client certificate (mTLS); the collector sees who it is', async (t) => {
  const ca = testCa('http-collector');
  const server = caSignedCertificate(ca, '127.0.0.1', 'server');
  const client = caSignedCertificate(ca, 'gitlab-otel-proxy', 'client');
  const { receiver, ep, pipeline } = await setup(
    t,
    undefined,
    { tls: { caFile: ca.certFile, certFile: client.certFile, keyFile: client.keyFile, insecureSkipVerify: false } },
    { tls: { key: server.key, cert: server.cert, clientCa: ca.cert, requireClientCertificate: true } },
  );
  t.match(ep.url, /^https:\/\//);
  pipeline.submit(makeSpans(3), resource, [ep]);
  await receiver.waitForSpans(3, 15_000);
  for (const call of receiver.calls) {
    t.match(call.clientCertificate, { subjectCN: 'gitlab-otel-proxy', issuerCN: 'gitlab-otel test CA http-collector' });
  }
});

t.test('a self-signed collector: refused (and retried) without insecure_skip_verify, accepted with it', async (t) => {
  const cert = loopbackCertificate();
  const strict = await setup(t, undefined, { tls: { insecureSkipVerify: false } }, { tls: { key: cert.key, cert: cert.cert } });
  strict.pipeline.submit(makeSpans(2), resource, [strict.ep]);
  await eventually(() => strict.pipeline.health()[0]!.state === 'failing', 10_000, 'verification failure');
  t.equal(strict.receiver.calls.length, 0, 'nothing reached a collector we cannot verify');
  t.match(strict.pipeline.health()[0]!.lastError, /CERT|SELF_SIGNED|UNABLE/);

  const lax = await setup(t, undefined, { tls: { insecureSkipVerify: true } }, { tls: { key: cert.key, cert: cert.cert } });
  lax.pipeline.submit(makeSpans(2), resource, [lax.ep]);
  await lax.receiver.waitForSpans(2, 10_000);
  t.equal(lax.receiver.spans.length, 2);
});

t.test('spans spooled while the collector refused them are delivered after a restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-http-spool-'));
  let down = true;
  const receiver = await new OtlpHttpReceiver({ behaviour: () => (down ? { kind: 'status', status: 503 } : { kind: 'ok' }) }).start();
  t.teardown(() => receiver.stop());
  const ep = http(receiver.url);
  const spool = { dir, maxBytes: 16 << 20 };
  const first = await ExportPipeline.create({ endpoints: [ep], metrics: createExportMetrics(new Registry()), log: () => undefined, spool });
  const spans = makeSpans(5);
  first.submit(spans, resource, [ep]);
  await eventually(() => receiver.calls.length > 0, 10_000, 'first attempt');
  await first.shutdown(300);
  t.equal(receiver.spans.length, 0);
  down = false;
  const second = await ExportPipeline.create({
    endpoints: [ep],
    metrics: createExportMetrics(new Registry()),
    log: () => undefined,
    spool,
  });
  t.teardown(() => second.shutdown(1000));
  await receiver.waitForSpans(5, 10_000);
  t.same(new Set(receiver.spans.map((s) => s.spanId)), new Set(spans.map((s) => s.spanId)));
});

t.test('an https:// payload endpoint with http_bearer_gcp_oidc: OTLP/HTTP to the URL as given, with a GCP ID token', async (t) => {
  const metadata = await startMetadataServer();
  t.teardown(() => metadata.close());
  const cert = loopbackCertificate();
  const receiver = await new OtlpHttpReceiver({
    path: '/otlp/v1/traces',
    tls: { key: cert.key, cert: cert.cert },
    verify: async (call) => {
      const token = call.authorization?.replace(/^Bearer /, '') ?? '';
      try {
        await metadata.verify(token, 'collector-audience');
        return undefined;
      } catch {
        return { kind: 'status', status: 401 };
      }
    },
  }).start();
  t.teardown(() => receiver.stop());
  const made = endpointFromPayload(
    { url: receiver.url, auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'collector-audience' } } },
    // A node-local collector must be named to pass the egress policy (docs/security.md#payload-endpoints).
    { metadataUrl: metadata.identityUrl, egress: { allowedHosts: [{ host: '127.0.0.1', port: receiver.port }] } },
  );
  if (!made.ok) throw made.error;
  t.equal(made.endpoint.protocol, 'http/protobuf');
  t.equal(made.endpoint.url, receiver.url, 'the path is used as is');
  // The receiver's certificate is self-signed; trust it as a custom CA would be.
  const ep: EndpointSettings = { ...made.endpoint, tls: { caFile: cert.certFile, insecureSkipVerify: false } };
  const pipeline = await ExportPipeline.create({ endpoints: [], metrics: createExportMetrics(new Registry()), log: () => undefined });
  t.teardown(() => pipeline.shutdown(1000));
  pipeline.submit(makeSpans(3), resource, [ep]);
  await receiver.waitForSpans(3, 10_000);
  t.same(receiver.refusals, []);
  t.ok(
    receiver.calls.every((c) => metadata.issued.includes(c.authorization?.replace(/^Bearer /, '') ?? '')),
    'the metadata server token',
  );
});

t.test('in-job export honours OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and appends /v1/traces to the generic endpoint', async (t) => {
  const receiver = await new OtlpHttpReceiver().start();
  t.teardown(() => receiver.stop());
  const plan = planJobExport({
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.baseUrl,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    GITLAB_OTEL_ID_TOKEN: 'id-token-value',
  });
  if (plan.kind !== 'on') throw new Error(plan.reason);
  t.equal(plan.endpoint.url, receiver.url);
  const result = await exportJobSpans(makeSpans(2), plan);
  t.same(result, { ok: true });
  t.equal(receiver.spans.length, 2);
  t.equal(receiver.calls[0]!.authorization, 'Bearer id-token-value');
  t.same(receiver.refusals, []);
});
