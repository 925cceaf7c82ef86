// Endpoints created on demand (GitLab's payload endpoints) are bounded: at most
// 16 at once. A new one beyond that takes the place of the
// least recently used idle one; when none is idle its spans are dropped and
// counted (reason endpoint_limit). Configured endpoints never count and are
// never evicted. One real receiver plays every collector: a distinct static
// header makes each endpoint distinct, and tells the receiver who sent a call.
import t from 'tap';
import { status } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { OtlpReceiver, type ExportCall } from '../../../src/telemetry/receiver.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { recordEvents, type LogEvent } from '../../support/memory-logger.js';
import type { EndpointSettings } from '../../../src/telemetry/export/settings.js';
import { endpointSettings, eventually, makeSpans, metric, resource } from '../../support/export.js';

// The limit the pipeline is meant to enforce, written here rather than imported: the tests
// below prove by behaviour that 16 payload endpoints are admitted and a 17th is not, so a
// change to the constant fails them instead of silently moving the expectation with it.
const LIMIT = 16;

const sender = (call: ExportCall): string => String(call.metadata.get('x-endpoint')[0] ?? '');

async function gaugeLabels(registry: Registry, name: string): Promise<string[]> {
  const data = await registry.getSingleMetric(name)!.get();
  return data.values.map((v) => String(v.labels.endpoint));
}

t.test('beyond the limit: refused while all are busy, then the least recently used idle one is evicted', async (t) => {
  let down = true;
  const receiver = await new OtlpReceiver({
    behaviour: () => (down ? { kind: 'error', code: status.UNAVAILABLE, details: 'collector down' } : { kind: 'ok' }),
  }).start();
  t.teardown(() => receiver.stop());
  const ep = (name: string): EndpointSettings => endpointSettings(name, receiver.url, { headers: { 'x-endpoint': name } });
  const configured = ep('configured');
  const registry = new Registry();
  const logs: LogEvent[] = [];
  const pipeline = await ExportPipeline.create({
    endpoints: [configured],
    metrics: createExportMetrics(registry),
    log: recordEvents(logs),
  });
  t.teardown(() => pipeline.shutdown(1000));
  const names = () =>
    pipeline
      .health()
      .map((h) => h.name)
      .sort();
  const payload = Array.from({ length: LIMIT + 1 }, (_, i) => ep(`e${i}`));
  const extra = payload[LIMIT]!;

  // The collector is down, so every on-demand endpoint holds its span and none is idle.
  for (const e of payload.slice(0, LIMIT)) pipeline.submit(makeSpans(1), resource, [configured, e]);
  t.equal(pipeline.health().length, LIMIT + 1, 'the configured endpoint is not counted against the limit');

  pipeline.submit(makeSpans(3), resource, [configured, extra]);
  pipeline.submit(makeSpans(2), resource, [extra]);
  t.notOk(names().includes(extra.name), 'no seventeenth endpoint');
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'endpoint_limit', endpoint: extra.name }), 5);
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'endpoint_limit' }), 5, 'nothing else was refused');
  t.equal(pipeline.health().find((h) => h.name === 'configured')?.queueSpans, LIMIT + 3, 'the configured endpoint still got those spans');

  // Back up: everything queued is delivered, and every endpoint becomes idle.
  down = false;
  await receiver.waitForSpans(2 * LIMIT + 3, 15_000);
  await eventually(() => pipeline.health().every((h) => h.queueSpans === 0), 10_000, 'all idle');

  // e0 is used again, so e1 is now the least recently used.
  pipeline.submit(makeSpans(1), resource, [payload[0]!]);
  await receiver.waitForSpans(2 * LIMIT + 4, 10_000);
  await eventually(() => pipeline.health().every((h) => h.queueSpans === 0), 10_000, 'all idle again');

  const before = receiver.spans.length;
  pipeline.submit(makeSpans(2), resource, [extra]);
  t.ok(names().includes(extra.name), 'the new endpoint was created');
  t.notOk(names().includes('e1'), 'the least recently used one made room');
  t.ok(names().includes('e0'), 'a recently used one was kept');
  t.ok(names().includes('configured'), 'configured endpoints are never evicted');
  t.equal(pipeline.health().length, LIMIT + 1);
  await receiver.waitForSpans(before + 2, 10_000);
  t.same(receiver.calls.slice(-1).map(sender), [extra.name], 'delivered by the new endpoint');
  t.same(
    logs.filter((e) => e.event === 'endpoint_evicted'),
    [{ level: 'info', event: 'endpoint_evicted', endpoint: 'e1', limit: LIMIT }],
    'one line per eviction',
  );
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'endpoint_limit' }), 5, 'eviction dropped nothing');

  // The evicted endpoint leaves no gauges behind (a stale endpoint_up 0 would alert forever).
  await eventually(async () => !(await gaugeLabels(registry, 'gitlab_otel_export_endpoint_up')).includes('e1'), 5000, 'e1 gauges removed');
  t.notOk((await gaugeLabels(registry, 'gitlab_otel_export_queue_spans')).includes('e1'));
  t.ok((await gaugeLabels(registry, 'gitlab_otel_export_endpoint_up')).includes('e0'), 'live endpoints keep theirs');

  // A job naming the evicted collector again gets it back, in place of the next least recently used (e2).
  pipeline.submit(makeSpans(1), resource, [payload[1]!]);
  t.ok(names().includes('e1'));
  t.notOk(names().includes('e2'));
  await receiver.waitForSpans(before + 3, 10_000);
  t.equal(sender(receiver.calls.at(-1)!), 'e1');
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total'), 5, 'only the spans refused at the limit were ever dropped');
});

t.test('an endpoint still holding spans is never evicted, even when it is the least recently used', async (t) => {
  // Calls from e0 stall; every other endpoint is answered at once.
  const receiver = await new OtlpReceiver({
    behaviour: (call) => (sender(call) === 'e0' ? { kind: 'error', code: status.UNAVAILABLE } : { kind: 'ok' }),
  }).start();
  t.teardown(() => receiver.stop());
  const ep = (name: string): EndpointSettings => endpointSettings(name, receiver.url, { headers: { 'x-endpoint': name } });
  const registry = new Registry();
  const pipeline = await ExportPipeline.create({ endpoints: [], metrics: createExportMetrics(registry), log: () => undefined });
  t.teardown(() => pipeline.shutdown(500));
  for (let i = 0; i < LIMIT; i++) pipeline.submit(makeSpans(1), resource, [ep(`e${i}`)]);
  await receiver.waitForSpans(LIMIT - 1, 10_000);
  await eventually(() => pipeline.health().filter((h) => h.queueSpans === 0).length === LIMIT - 1, 10_000, 'all but e0 idle');

  pipeline.submit(makeSpans(1), resource, [ep('new')]);
  const names = pipeline.health().map((h) => h.name);
  t.ok(names.includes('e0'), 'e0 still holds a span: kept');
  t.notOk(names.includes('e1'), 'the least recently used idle one went instead');
  t.ok(names.includes('new'));
  t.equal(pipeline.health().find((h) => h.name === 'e0')?.queueSpans, 1);
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'endpoint_limit' }), 0);
});

t.test('after shutdown a new endpoint is not created, and its spans count as shutdown, not as the limit', async (t) => {
  const registry = new Registry();
  const pipeline = await ExportPipeline.create({ endpoints: [], metrics: createExportMetrics(registry), log: () => undefined });
  await pipeline.shutdown(500);
  pipeline.submit(makeSpans(2), resource, [endpointSettings('late', 'http://127.0.0.1:9')]);
  t.same(pipeline.health(), []);
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'shutdown', endpoint: 'late' }), 2);
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'endpoint_limit' }), 0);
});

t.test('endpoints named together are all in use: a new one never evicts its sibling', async (t) => {
  const receiver = await new OtlpReceiver().start();
  t.teardown(() => receiver.stop());
  const ep = (name: string): EndpointSettings => endpointSettings(name, receiver.url, { headers: { 'x-endpoint': name } });
  const logs: LogEvent[] = [];
  const pipeline = await ExportPipeline.create({ endpoints: [], metrics: createExportMetrics(new Registry()), log: recordEvents(logs) });
  t.teardown(() => pipeline.shutdown(500));
  for (let i = 0; i < LIMIT; i++) pipeline.submit(makeSpans(1), resource, [ep(`e${i}`)]);
  await receiver.waitForSpans(LIMIT, 10_000);
  await eventually(() => pipeline.health().every((h) => h.queueSpans === 0), 10_000, 'all idle');

  // e0 is the least recently used, but this job names it after the new one.
  pipeline.submit(makeSpans(1), resource, [ep('new'), ep('e0')]);
  t.same(
    logs.filter((e) => e.event === 'endpoint_evicted').map((e) => e.endpoint),
    ['e1'],
    'one eviction, and not of e0',
  );
  await receiver.waitForSpans(LIMIT + 2, 10_000);
  t.same(receiver.calls.slice(-2).map(sender).sort(), ['e0', 'new']);
});
