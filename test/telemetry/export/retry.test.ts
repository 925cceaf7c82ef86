import t from 'tap';
import { status } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { OtlpReceiver, type Behaviour } from '../../../src/telemetry/receiver.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { recordEvents, type LogEvent } from '../../support/memory-logger.js';
import type { EndpointSettings } from '../../../src/telemetry/export/settings.js';
import { endpointSettings, eventually, makeSpans, metric, resource } from '../../support/export.js';

async function setup(t: { teardown(fn: () => unknown): void }, behaviour: Behaviour, over: Partial<EndpointSettings> = {}) {
  const receiver = await new OtlpReceiver({ behaviour }).start();
  const registry = new Registry();
  const logs: LogEvent[] = [];
  const ep = endpointSettings('primary', receiver.url, over);
  const pipeline = await ExportPipeline.create({ endpoints: [ep], metrics: createExportMetrics(registry), log: recordEvents(logs) });
  t.teardown(async () => {
    await pipeline.shutdown(1000);
    await receiver.stop();
  });
  return { receiver, registry, logs, ep, pipeline };
}

t.test('UNAVAILABLE is retried and the spans arrive exactly once', async (t) => {
  const { receiver, registry, logs, ep, pipeline } = await setup(t, (_c, i) =>
    i < 2 ? { kind: 'error', code: status.UNAVAILABLE, details: 'busy' } : { kind: 'ok' },
  );
  const spans = makeSpans(10);
  pipeline.submit(spans, resource, [ep]);
  await receiver.waitForSpans(10, 10_000);
  await pipeline.flush(2000);
  t.equal(receiver.calls.length, 3, 'two refusals, one success');
  t.same(new Set(receiver.spans.map((s) => s.spanId)), new Set(spans.map((s) => s.spanId)));
  t.equal(receiver.spans.length, 10, 'no duplicates');
  t.equal(await metric(registry, 'gitlab_otel_spans_exported_total', { endpoint: 'primary' }), 10);
  t.equal(await metric(registry, 'gitlab_otel_spans_retried_total', { endpoint: 'primary' }), 20);
  t.same(
    logs.filter((l) => l.event === 'endpoint_state').map((l) => l.to),
    ['failing', 'up'],
    'one log line per state change, not per attempt',
  );
  t.equal(pipeline.health()[0]!.state, 'up');
});

t.test('RESOURCE_EXHAUSTED with RetryInfo waits at least retry_delay', async (t) => {
  const { receiver, ep, pipeline } = await setup(t, (_c, i) =>
    i === 0 ? { kind: 'error', code: status.RESOURCE_EXHAUSTED, details: 'slow down', retryDelayMs: 400 } : { kind: 'ok' },
  );
  pipeline.submit(makeSpans(3), resource, [ep]);
  await receiver.waitForSpans(3, 10_000);
  t.equal(receiver.calls.length, 2);
  const gap = receiver.calls[1]!.at - receiver.calls[0]!.at;
  t.ok(gap >= 400, `retry came ${gap} ms after the throttled call (server clock)`);
  t.equal(receiver.spans.length, 3);
});

t.test('RESOURCE_EXHAUSTED without RetryInfo and other permanent errors are dropped and counted', async (t) => {
  const { receiver, registry, ep, pipeline } = await setup(t, (_c, i) =>
    i === 0
      ? { kind: 'error', code: status.RESOURCE_EXHAUSTED, details: 'too big' }
      : { kind: 'error', code: status.INVALID_ARGUMENT, details: 'bad' },
  );
  pipeline.submit(makeSpans(4), resource, [ep]);
  await eventually(
    async () => (await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'rejected' })) === 4,
    10_000,
    'drop counted',
  );
  pipeline.submit(makeSpans(2), resource, [ep]);
  await eventually(
    async () => (await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'rejected' })) === 6,
    10_000,
    'second drop counted',
  );
  t.equal(receiver.calls.length, 2, 'never retried');
  t.equal(pipeline.health()[0]!.state, 'failing');
  t.equal(pipeline.health()[0]!.lastError, 'INVALID_ARGUMENT');
});

t.test('partial success is not retried; its rejected spans are counted', async (t) => {
  const { receiver, registry, ep, pipeline } = await setup(t, () => ({ kind: 'partial', rejectedSpans: 2, message: 'invalid span' }));
  pipeline.submit(makeSpans(5), resource, [ep]);
  await receiver.waitForSpans(3, 10_000);
  await pipeline.flush(2000);
  t.equal(receiver.calls.length, 1);
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'partial_success' }), 2);
  t.equal(await metric(registry, 'gitlab_otel_spans_exported_total'), 3);
});

t.test('a slow collector past the deadline is retried (DEADLINE_EXCEEDED)', async (t) => {
  const { receiver, ep, pipeline } = await setup(
    t,
    (_c, i) => (i === 0 ? { kind: 'delay', ms: 600, then: { kind: 'error', code: status.UNAVAILABLE } } : { kind: 'ok' }),
    { timeoutMs: 150 },
  );
  pipeline.submit(makeSpans(2), resource, [ep]);
  await receiver.waitForSpans(2, 10_000);
  t.ok(receiver.calls.length >= 2);
  t.equal(receiver.spans.length, 2);
});

t.test('spans older than max_age are dropped while the collector is down', async (t) => {
  const { receiver, registry, ep, pipeline } = await setup(t, () => ({ kind: 'error', code: status.UNAVAILABLE }), {
    queue: { maxSpans: 100, maxBytes: 1 << 20, maxAgeMs: 300, batchSize: 10, batchDelayMs: 10, maxConcurrentExports: 1 },
  });
  pipeline.submit(makeSpans(7), resource, [ep]);
  await eventually(
    async () => (await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'max_age' })) === 7,
    10_000,
    'age drop',
  );
  t.equal(receiver.spans.length, 0);
  t.equal(pipeline.health()[0]!.queueSpans, 0);
});

t.test('a full queue refuses what does not fit and counts it', async (t) => {
  const { registry, ep, pipeline } = await setup(t, () => ({ kind: 'error', code: status.UNAVAILABLE }), {
    queue: { maxSpans: 5, maxBytes: 1 << 20, maxAgeMs: 60_000, batchSize: 10, batchDelayMs: 10, maxConcurrentExports: 1 },
  });
  pipeline.submit(makeSpans(8), resource, [ep]);
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'queue_full' }), 3);
  t.equal(await metric(registry, 'gitlab_otel_spans_enqueued_total'), 5);
});

t.test('a dead endpoint does not delay another', async (t) => {
  const dead = await new OtlpReceiver({
    behaviour: () => ({ kind: 'delay', ms: 300, then: { kind: 'error', code: status.UNAVAILABLE } }),
  }).start();
  const live = await new OtlpReceiver().start();
  const registry = new Registry();
  const a = endpointSettings('dead', dead.url);
  const b = endpointSettings('live', live.url);
  const pipeline = await ExportPipeline.create({ endpoints: [a, b], metrics: createExportMetrics(registry), log: () => undefined });
  t.teardown(async () => {
    await pipeline.shutdown(500);
    await dead.stop();
    await live.stop();
  });
  for (let i = 0; i < 5; i++) pipeline.submit(makeSpans(20), resource, [a, b]);
  await live.waitForSpans(100, 10_000);
  const deadHealth = pipeline.health().find((h) => h.name === 'dead')!;
  t.ok(deadHealth.queueSpans > 0, 'the dead endpoint still holds its spans');
  t.equal(live.spans.length, 100, 'the live endpoint got everything');
  t.ok(dead.spans.length === 0);
});

t.test('gzip compression is accepted by a standard gRPC server', async (t) => {
  const { receiver, ep, pipeline } = await setup(t, () => ({ kind: 'ok' }), { compression: 'gzip' });
  pipeline.submit(makeSpans(50), resource, [ep]);
  await receiver.waitForSpans(50, 10_000);
  t.equal(receiver.spans.length, 50, 'the server decompressed and decoded the batch');
});
