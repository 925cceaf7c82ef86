// The sampling hold with the real export pipeline and an OTLP receiver behind
// it: what reaches the collector is what the hold let through.
import t, { type Test } from 'tap';
import { Registry } from 'prom-client';
import { SamplingHold, type SpanRoute } from '../../../src/runner-proxy/job/sampling-hold.js';
import { DEFAULT_SAMPLING, type SamplingSettings } from '../../../src/telemetry/export/settings.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { OtlpReceiver } from '../../../src/telemetry/receiver.js';
import { endpointSettings, makeSpans, metric, resource } from '../../support/export.js';

const OFF: SamplingSettings = { ...DEFAULT_SAMPLING, sampler: 'always_off', maxHeldSpansPerJob: 3, maxHeldSpans: 5 };

async function setup(t: Test, settings: SamplingSettings | undefined) {
  const receiver = await new OtlpReceiver().start();
  const registry = new Registry();
  const collector = endpointSettings('collector', receiver.url);
  const exportMetrics = createExportMetrics(registry);
  const pipeline = await ExportPipeline.create({ endpoints: [collector], metrics: exportMetrics, log: () => undefined });
  t.teardown(async () => {
    await pipeline.shutdown(1000);
    await receiver.stop();
  });
  const hold = new SamplingHold(settings, pipeline, exportMetrics.dropped);
  const route = (jobId: number, sampled: boolean): SpanRoute => ({ jobId, sampled, resource, endpoints: [collector] });
  return { receiver, registry, pipeline, hold, route };
}

t.test('only the fallback contract is sampled here; GitLab-enabled jobs were sampled upstream', async (t) => {
  const { hold, pipeline } = await setup(t, OFF);
  t.equal(hold.isSampled('tracing', '4bf92f3577b34da6a3ce929d0e0e4736'), true);
  t.equal(hold.isSampled('job_telemetry', '4bf92f3577b34da6a3ce929d0e0e4736'), true);
  t.equal(hold.isSampled('variable', '4bf92f3577b34da6a3ce929d0e0e4736'), false);
  const none = new SamplingHold(undefined, pipeline);
  t.equal(none.isSampled('variable', '4bf92f3577b34da6a3ce929d0e0e4736'), true, 'no sampling configured: every job');
});

t.test('an unsampled job is exported whole only if it failed or was canceled; past the bounds spans are counted as dropped', async (t) => {
  const { hold, route, receiver, pipeline, registry } = await setup(t, OFF);
  const ok = route(1, false);
  const failed = route(2, false);
  const canceled = route(3, false);
  hold.emit(ok, makeSpans(2));
  const failedStages = makeSpans(4);
  hold.emit(failed, failedStages);
  t.equal(hold.heldSpans, 5, '2 + 3: the per-job bound (3) applies');
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'sampling_hold_full' }), 1);
  hold.emit(canceled, makeSpans(1));
  t.equal(hold.heldSpans, 5, 'the total bound (5) applies');
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'sampling_hold_full' }), 2);

  const [okSpan, failedSpan] = makeSpans(2);
  hold.finish(ok, { state: 'success' }, okSpan!);
  hold.finish(failed, { state: 'failed', failureReason: 'script_failure' }, failedSpan!);
  hold.discard(3);
  t.equal(hold.heldSpans, 0, 'everything released');
  await pipeline.flush(5000);
  t.same(
    receiver.spans.map((s) => s.spanId).sort(),
    [...failedStages.slice(0, 3), failedSpan!].map((s) => s.spanId).sort(),
    "the failed job's held spans and its job span; nothing of the successful one",
  );
});

t.test('a sampled job goes straight to the sink', async (t) => {
  const { hold, route, receiver, pipeline } = await setup(t, OFF);
  const spans = makeSpans(2);
  hold.emit(route(4, true), spans);
  t.equal(hold.heldSpans, 0);
  await pipeline.flush(5000);
  t.equal(receiver.spans.length, 2);
});
