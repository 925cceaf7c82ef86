// One endpoint on its own, against a real OTLP receiver: its bounded queue,
// what it counts as dropped and why, its health and its state changes. The
// retry loop's timing rules are in retry.test.ts and otlp-http.test.ts.
import t, { type Test } from 'tap';
import { status } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { EndpointExporter } from '../../../src/telemetry/export/endpoint.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import type { EndpointSettings } from '../../../src/telemetry/export/settings.js';
import { OtlpReceiver, type Behaviour } from '../../../src/telemetry/receiver.js';
import { endpointSettings, eventually, makeSpans, metric, resource } from '../../support/export.js';
import { recordEvents, type LogEvent } from '../../support/memory-logger.js';

async function setup(t: Test, behaviour?: Behaviour, over: (url: string) => Partial<EndpointSettings> = () => ({})) {
  const receiver = await new OtlpReceiver(behaviour ? { behaviour } : {}).start();
  const registry = new Registry();
  const logs: LogEvent[] = [];
  const settings = endpointSettings('ep', receiver.url, over(receiver.url));
  const endpoint = EndpointExporter.create(settings, { metrics: createExportMetrics(registry), log: recordEvents(logs) });
  t.teardown(async () => {
    await endpoint.shutdown(500);
    await receiver.stop();
  });
  return { receiver, registry, logs, endpoint };
}

t.test('what does not fit the queue is counted as queue_full; the rest is delivered', async (t) => {
  const { receiver, registry, endpoint } = await setup(t, undefined, () => ({
    queue: { ...endpointSettings('x', 'http://127.0.0.1:1').queue, maxSpans: 3 },
  }));
  const spans = makeSpans(5);
  endpoint.submit(spans, resource);
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { endpoint: 'ep', reason: 'queue_full' }), 2);
  await endpoint.flush(5000);
  t.same(
    receiver.spans.map((s) => s.spanId),
    spans.slice(0, 3).map((s) => s.spanId),
    'the first three, in order',
  );
  t.equal(await metric(registry, 'gitlab_otel_spans_exported_total', { endpoint: 'ep' }), 3);
  t.match(endpoint.health(), { name: 'ep', state: 'up', queueSpans: 0, queueBytes: 0, consecutiveFailures: 0 });
});

t.test('health names the collector by scheme and host only', async (t) => {
  const { endpoint, receiver } = await setup(t, undefined, (url) => ({
    url: url.replace('http://', 'http://user:secret@') + '/some/path',
  }));
  const { url } = endpoint.health();
  t.equal(url, `http://${new URL(receiver.url).host}`);
  t.notOk(url.includes('secret'), 'no user info');
});

t.test('a failing collector: state failing with the gRPC status name, logged once per change, then up again', async (t) => {
  let refuse = true;
  const { endpoint, logs } = await setup(t, () => (refuse ? { kind: 'error', code: status.UNAVAILABLE } : { kind: 'ok' }));
  endpoint.submit(makeSpans(2), resource);
  await eventually(() => endpoint.health().state === 'failing', 10_000, 'the endpoint failing');
  t.match(endpoint.health(), { state: 'failing', lastError: 'UNAVAILABLE' });
  t.ok(endpoint.health().consecutiveFailures >= 1);
  refuse = false;
  await endpoint.flush(10_000);
  t.match(endpoint.health(), { state: 'up', consecutiveFailures: 0 });
  t.same(
    logs.filter((l) => l.event === 'endpoint_state').map((l) => [l.level, l.to]),
    [
      ['warn', 'failing'],
      ['info', 'up'],
    ],
    'one line per state change, at the level of the change',
  );
});

t.test('an endpoint that cannot be used is invalid: spans counted as endpoint_invalid, never thrown', async (t) => {
  const { endpoint, registry, logs, receiver } = await setup(t, undefined, (url) => ({
    url: url.replace('http://', 'https://'),
    tls: { caFile: '/nonexistent/ca.pem', insecureSkipVerify: false },
  }));
  t.equal(endpoint.health().state, 'invalid');
  t.doesNotThrow(() => endpoint.submit(makeSpans(4), resource));
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { endpoint: 'ep', reason: 'endpoint_invalid' }), 4);
  t.match(logs, [{ level: 'warn', event: 'endpoint_invalid', endpoint: 'ep' }]);
  t.equal(receiver.calls.length, 0, 'nothing sent');
});

t.test('without a spool, what is still queued at shutdown is counted as shutdown, and so is what comes after', async (t) => {
  const { endpoint, registry } = await setup(
    t,
    () => ({ kind: 'error', code: status.UNAVAILABLE }),
    () => ({
      retry: { initialBackoffMs: 5000, maxBackoffMs: 5000 },
    }),
  );
  endpoint.submit(makeSpans(3), resource);
  await endpoint.shutdown(200);
  endpoint.submit(makeSpans(2), resource);
  t.equal(
    await metric(registry, 'gitlab_otel_spans_dropped_total', { endpoint: 'ep', reason: 'shutdown' }),
    5,
    'the 3 unsent and the 2 late',
  );
});
