// Sampling through the real proxy: jobs enabled by the fallback variable are
// sampled by trace id (one pipeline, one answer), failed ones always kept;
// jobs GitLab enabled are exported whole whatever the sampler says.
import t, { type Test } from 'tap';
import { startLab, runLabJob, type Lab, type LabJob } from '../../src/lab/lab.js';
import type { ReceivedSpan } from '../../src/telemetry/receiver.js';
import type { JobLogScenario } from '../../src/lab/job-log-builder.js';
import { gitlabTraceId, pipelineTraceId } from '../../src/telemetry/pipeline-ids.js';
import { TraceSampling } from '../../src/telemetry/sampling.js';
import { metric } from '../support/export.js';

const SERVER = 'https://gitlab.example.com';
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

function samplingLab(sampling: Record<string, unknown>): Promise<Lab> {
  return startLab({ proxyConfig: { telemetry: { negotiation: 'payload-or-variable' }, sampling } });
}

async function fallbackJob(lab: Lab, id: number, pipelineId: number, scenario: JobLogScenario = 'success'): Promise<LabJob> {
  return runLabJob(lab, lab.runner(), { payload: { id, pipelineId, serverUrl: SERVER, contract: { kind: 'variable' } }, scenario });
}

const ofJob = (spans: ReceivedSpan[], jobId: number): ReceivedSpan[] => {
  const job = spans.find((s) => s.name === 'job_execution' && s.attributes['ci.job.id'] === jobId);
  if (!job) return [];
  const ids = new Set([job.spanId]);
  // Stage spans hang off the job span; user sections off stages: follow parentage down.
  for (let grew = true; grew;) {
    grew = false;
    for (const s of spans) {
      if (s.traceId === job.traceId && !ids.has(s.spanId) && ids.has(s.parentSpanId)) {
        ids.add(s.spanId);
        grew = true;
      }
    }
  }
  return spans.filter((s) => ids.has(s.spanId));
};

/** Every expected stage and section, and job_execution, exactly once. */
function assertWhole(t: Test, spans: ReceivedSpan[], job: LabJob, what: string): void {
  const mine = ofJob(spans, job.sim.id);
  const want = ['job_execution', ...job.log.sections.map((s) => `${s.name}#${s.attempt}`)].sort();
  const got = mine.map((s) => (s.name === 'job_execution' ? s.name : `${s.name}#${String(s.attributes['ci.stage.attempt'] ?? 1)}`)).sort();
  t.same(got, want, `${what}: job_execution and every stage/section span, once each`);
}

t.test('ratio 0: a successful fallback job exports nothing, a failed one everything', async (t) => {
  const lab = await samplingLab({ sampler: 'parentbased_traceidratio', ratio: 0 });
  t.teardown(() => lab.stop());
  const ok = await fallbackJob(lab, 5001, 501, 'success');
  const failed = await fallbackJob(lab, 5002, 502, 'script-failure');
  t.equal(ok.result.finalStatus, 200);
  t.equal(failed.result.finalStatus, 200);
  // The failed job ended after the successful one: once its spans are in, the other's would be too.
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution' && x.attributes['ci.job.id'] === 5002), 10_000);
  await lab.proxy.pipeline.flush(2000);
  const spans = lab.receiver!.spans;
  t.equal(spans.filter((s) => s.traceId === gitlabTraceId(501)).length, 0, 'unsampled successful job: no span at all');
  assertWhole(t, spans, failed, 'unsampled failed job');
  t.match(
    ok.received.variables.TRACEPARENT,
    /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/,
    'the job got a TRACEPARENT flagged not sampled, so in-job tools do not export either',
  );
  t.equal(lab.proxy.tracker.heldSpans, 0, 'nothing left held once both jobs ended');
});

t.test('ratio 0: a canceled fallback job is kept', async (t) => {
  const lab = await samplingLab({ sampler: 'parentbased_traceidratio', ratio: 0 });
  t.teardown(() => lab.stop());
  const job = await runLabJob(lab, lab.runner(), {
    payload: { id: 5011, pipelineId: 511, serverUrl: SERVER, contract: { kind: 'variable' } },
    scenario: 'script-failure',
    jobStatus: 'canceling',
  });
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  await lab.proxy.pipeline.flush(2000);
  t.match(lab.receiver!.spans.find((s) => s.name === 'job_execution')!.attributes, { 'ci.job.status': 'canceled' });
  assertWhole(t, lab.receiver!.spans, job, 'unsampled canceled job');
});

t.test('ratio 1: every fallback job is exported whole', async (t) => {
  const lab = await samplingLab({ sampler: 'parentbased_traceidratio', ratio: 1 });
  t.teardown(() => lab.stop());
  const job = await fallbackJob(lab, 5021, 521, 'success');
  await lab.receiver!.waitForSpans(1 + job.log.sections.length, 10_000);
  await lab.proxy.pipeline.flush(2000);
  assertWhole(t, lab.receiver!.spans, job, 'sampled successful job');
});

t.test('one decision per pipeline: all jobs of a trace id are kept or all dropped', async (t) => {
  const settings = { sampler: 'parentbased_traceidratio' as const, ratio: 0.5, maxHeldSpans: 1000, maxHeldSpansPerJob: 1000 };
  const sampler = new TraceSampling(settings);
  // Pick one pipeline the sampler keeps and one it drops (inputs, not expected results: the spans decide).
  // The proxy samples fallback jobs on the instance-scoped id, uniform even where trace ids are small pipeline numbers.
  const kept = Array.from({ length: 200 }, (_, i) => 600 + i).find((p) => sampler.isSampled({ traceId: pipelineTraceId(SERVER, p) }))!;
  const dropped = Array.from({ length: 200 }, (_, i) => 600 + i).find((p) => !sampler.isSampled({ traceId: pipelineTraceId(SERVER, p) }))!;
  t.ok(kept && dropped, `pipelines ${kept} (kept) and ${dropped} (dropped)`);
  const lab = await samplingLab({ sampler: settings.sampler, ratio: settings.ratio });
  t.teardown(() => lab.stop());
  const keptJobs = [await fallbackJob(lab, 5031, kept), await fallbackJob(lab, 5032, kept)];
  await fallbackJob(lab, 5033, dropped);
  await fallbackJob(lab, 5034, dropped);
  // A failed job last, in the dropped pipeline: it is kept, and once it is in, everything before it is.
  const lastFailed = await fallbackJob(lab, 5035, dropped, 'script-failure');
  await lab.receiver!.waitFor((s) => s.some((x) => x.attributes['ci.job.id'] === 5035), 10_000);
  await lab.proxy.pipeline.flush(2000);
  const spans = lab.receiver!.spans;
  for (const job of keptJobs) assertWhole(t, spans, job, `job ${job.sim.id} of the kept pipeline`);
  t.same(
    spans.filter((s) => s.name === 'job_execution' && s.traceId === gitlabTraceId(dropped)).map((s) => s.attributes['ci.job.id']),
    [5035],
    'of the dropped pipeline only the failed job',
  );
  assertWhole(t, spans, lastFailed, 'the failed job of the dropped pipeline');
});

t.test('payload-enabled jobs are exported whole whatever the sampler says', async (t) => {
  const lab = await samplingLab({ sampler: 'always_off' });
  t.teardown(() => lab.stop());
  const tracing = await runLabJob(lab, lab.runner(), {
    payload: { id: 5041, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
  });
  const seed = await runLabJob(lab, lab.runner(), {
    payload: { id: 5042, contract: { kind: 'job_telemetry', traceId: 'aa'.repeat(16), parentSpanId: 'bb'.repeat(8) } },
  });
  const fallback = await fallbackJob(lab, 5043, 543);
  await lab.receiver!.waitForSpans(2 + tracing.log.sections.length + seed.log.sections.length, 10_000);
  await lab.proxy.pipeline.flush(2000);
  assertWhole(t, lab.receiver!.spans, tracing, 'features.tracing job');
  assertWhole(t, lab.receiver!.spans, seed, 'job_telemetry job');
  t.equal(ofJob(lab.receiver!.spans, fallback.sim.id).length, 0, 'the fallback job under always_off: dropped');
});

t.test('the hold is bounded: spans past it are counted as dropped, the rest of a failed job is kept', async (t) => {
  const lab = await samplingLab({ sampler: 'parentbased_traceidratio', ratio: 0, max_held_spans_per_job: 3 });
  t.teardown(() => lab.stop());
  const job = await fallbackJob(lab, 5051, 551, 'script-failure');
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  await lab.proxy.pipeline.flush(2000);
  const mine = lab.receiver!.spans.filter((s) => s.traceId === gitlabTraceId(551));
  t.equal(mine.length, 4, 'three held spans and job_execution');
  t.ok(job.log.sections.length > 3, `the job had more (${job.log.sections.length})`);
  t.equal(
    await metric(lab.proxy.registry, 'gitlab_otel_spans_dropped_total', { reason: 'sampling_hold_full', endpoint: 'lab' }),
    job.log.sections.length - 3,
    'the overflow is counted',
  );
});
