// The tracker's CI/CD metrics side (docs/metrics.md#every-job), on its seam:
// exchanges fed directly, the real CiMetrics on a real MeterProvider read by a
// pull reader, the real export pipeline and receiver, a real journal. A job
// without telemetry is followed metrics-only: payload untouched, nothing
// exported or journalled, its stages and outcome measured; a sampled-out job is
// measured before the sampling hold.
import t, { type Test } from 'tap';
import type { Attributes } from '@opentelemetry/api';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AggregationTemporality, MeterProvider, MetricReader, type HistogramMetricData } from '@opentelemetry/sdk-metrics';
import { buildJobLog } from '../../../src/lab/job-log-builder.js';
import { makeJobPayload } from '../../../src/lab/job-payload.js';
import { memoryLogger } from '../../support/memory-logger.js';
import { CiMetrics, CI_METRIC, SYSTEM_FAILURE_REASONS } from '../../../src/runner-proxy/job/ci-metrics.js';
import { JobJournal } from '../../../src/runner-proxy/job/journal.js';
import { JobTracker, type JobTrackerOptions } from '../../../src/runner-proxy/job/tracker.js';
import { CI, CICD, ERROR_TYPE } from '../../../src/telemetry/attributes.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { OtlpReceiver } from '../../../src/telemetry/receiver.js';
import { nowNanos } from '../../../src/telemetry/spans.js';
import { Registry } from 'prom-client';
import { endpointSettings } from '../../support/export.js';

const RUNNER_REQUEST = Buffer.from(JSON.stringify({ token: 'glrt-x', info: { version: '19.4.0', executor: 'kubernetes' } }));

class PullReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

async function harness(t: Test, over: Partial<JobTrackerOptions> = {}) {
  const receiver = await new OtlpReceiver().start();
  const collector = endpointSettings('collector', receiver.url);
  const exportMetrics = createExportMetrics(new Registry());
  const pipeline = await ExportPipeline.create({ endpoints: [collector], metrics: exportMetrics, log: () => undefined });
  const reader = new PullReader();
  const provider = new MeterProvider({ readers: [reader] });
  t.teardown(async () => {
    await provider.shutdown();
    await pipeline.shutdown(1000);
    await receiver.stop();
  });
  const holder: { tracker?: JobTracker } = {};
  const ciMetrics = new CiMetrics({
    meter: provider.getMeter('test'),
    projectAttribute: false,
    pipelineNameAttribute: false,
    maxAttributeValues: 10,
    activeJobs: () => holder.tracker?.activeJobs ?? 0,
  });
  const tracker = new JobTracker({
    negotiation: {
      policy: 'payload-or-variable',
      nativeRunnerSpan: 'replace',
      usePayloadEndpoints: false,
      upstreamUrl: 'https://gitlab.example.com',
    },
    sink: pipeline,
    endpoints: [collector],
    resourceAttributes: { 'service.name': 'tracker-metrics-test' },
    traceContext: { inject: true },
    logSpans: { maxSpansPerJob: 100, maxAttributeLength: 100 },
    abandonAfterMs: 0,
    log: memoryLogger(),
    ciMetrics,
    ...over,
  });
  holder.tracker = tracker;
  const histogram = async (name: string) => {
    const { resourceMetrics } = await reader.collect();
    const m = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((x) => x.descriptor.name === name) as
      HistogramMetricData | undefined;
    return m?.dataPoints ?? [];
  };
  /** A counter's points: attributes and value. */
  const counter = async (name: string) =>
    (await histogram(name)).map((p) => ({ attributes: p.attributes, value: p.value as unknown as number }));
  return { receiver, pipeline, tracker, histogram, counter };
}

function run(tracker: JobTracker, id: number, token: string, state: 'success' | 'failed', failureReason?: string): number {
  const log = buildJobLog(state === 'success' ? 'success' : 'script-failure', { start: new Date(), timestamps: true });
  const put = (s: string) =>
    tracker.jobUpdate({
      jobId: id,
      jobToken: token,
      body: Buffer.from(JSON.stringify({ token, state: s, failure_reason: failureReason })),
      status: 200,
      at: nowNanos(),
    });
  put('running');
  tracker.tracePatch({
    jobId: id,
    jobToken: token,
    contentRange: `0-${log.bytes.length - 1}`,
    body: log.bytes,
    status: 202,
    range: `0-${log.bytes.length}`,
    at: nowNanos(),
  });
  put(state);
  return log.sections.filter((s) => s.kind === 'stage').length;
}

t.test('a job without telemetry: payload untouched, followed, measured, never exported or journalled', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-tracker-metrics-'));
  const journal = JobJournal.open(dir);
  t.teardown(() => journal.close());
  const h = await harness(t, { journal });
  const payload = makeJobPayload({ id: 501, contract: { kind: 'none' }, timeInQueueSeconds: 9 });
  t.equal(h.tracker.editJobPayload(JSON.stringify(payload), RUNNER_REQUEST, nowNanos()), undefined, 'the payload goes as GitLab sent it');
  t.equal(h.tracker.activeJobs, 1, 'followed');
  t.equal(h.tracker.jobContext(501), undefined, 'no trace context: nothing was handed to the job');
  await new Promise((r) => setImmediate(r));
  t.same(journal.jobs(), [], 'not journalled');

  // A neighbour without the job's token cannot end it.
  h.tracker.jobUpdate({
    jobId: 501,
    jobToken: 'glcbt-forged',
    body: Buffer.from('{"token":"glcbt-forged","state":"failed"}'),
    status: 403,
    at: nowNanos(),
  });
  t.equal(h.tracker.activeJobs, 1, 'a forged final update changes nothing');

  const stages = run(h.tracker, 501, payload.token as string, 'success');
  t.equal(h.tracker.activeJobs, 0);
  const jobs = await h.histogram(CI_METRIC.jobDuration);
  t.equal(jobs.length, 1);
  t.match(jobs[0]!.attributes, { [CI.runnerExecutor]: 'kubernetes', [CI.jobStatus]: 'success' });
  t.equal(jobs[0]!.value.count, 1);
  t.same(
    await h.counter(CI_METRIC.jobs),
    [{ attributes: { [CI.runnerExecutor]: 'kubernetes', [CI.jobStatus]: 'success', [CICD.taskRunResult]: 'success' }, value: 1 }],
    'its success counted in the series its start made at 0 (docs/metrics.md#zero-series), not in another',
  );
  t.equal((await h.histogram(CI_METRIC.jobQueueDuration))[0]?.value.sum, 9);
  const stagePoints = await h.histogram(CI_METRIC.stageDuration);
  t.equal(
    stagePoints.reduce((n, p) => n + p.value.count, 0),
    stages,
    'one stage observation per build stage in the log',
  );
  await h.pipeline.flush(1000);
  t.equal(h.receiver.spans.length, 0, 'no span exported');
  t.same(journal.jobs(), []);
});

t.test('zero series at a job start and at a resumed job, before either ends; its system failure counts in them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-tracker-metrics-'));
  const journal = JobJournal.open(dir);
  const h = await harness(t, { journal });
  const payload = makeJobPayload({ id: 504, contract: { kind: 'tracing', traceId: '4bf92f3577b34da6a3ce929d0e0e4736' } });
  h.tracker.editJobPayload(JSON.stringify(payload), RUNNER_REQUEST, nowNanos());
  const zeroSeries = [...SYSTEM_FAILURE_REASONS].sort().map((reason) => ({
    attributes: { [CICD.systemComponent]: 'gitlab-runner', [ERROR_TYPE]: reason, [CI.runnerExecutor]: 'kubernetes' },
    value: 0,
  }));
  const byReason = (points: { attributes: Attributes; value: number }[]) =>
    points.sort((a, b) => String(a.attributes[ERROR_TYPE]).localeCompare(String(b.attributes[ERROR_TYPE])));
  t.same(byReason(await h.counter(CI_METRIC.systemErrors)), zeroSeries, "the runner's executor, every system failure reason, at 0");
  t.same(await h.counter(CI_METRIC.jobs), [
    { attributes: { [CI.runnerExecutor]: 'kubernetes', [CI.jobStatus]: 'success', [CICD.taskRunResult]: 'success' }, value: 0 },
  ]);
  await new Promise((r) => setImmediate(r));
  h.tracker.suspend();
  journal.close();

  // A restarted proxy: a new tracker and a new MeterProvider, the same journal.
  const reopened = JobJournal.open(dir);
  t.teardown(() => reopened.close());
  const next = await harness(t, { journal: reopened });
  t.equal(next.tracker.restore(), 1);
  t.same(byReason(await next.counter(CI_METRIC.systemErrors)), zeroSeries, 'served at 0 again as soon as the job is resumed');
  run(next.tracker, 504, payload.token as string, 'failed', 'runner_system_failure');
  t.equal(next.tracker.activeJobs, 0);
  const after = byReason(await next.counter(CI_METRIC.systemErrors));
  t.same(
    after.map((p) => p.attributes),
    zeroSeries.map((p) => p.attributes),
    'the failure counted in its zero series: no series added',
  );
  t.same(
    after.filter((p) => p.value !== 0).map((p) => [p.attributes[ERROR_TYPE], p.value]),
    [['runner_system_failure', 1]],
  );
});

t.test('a sampled-out job is measured before the sampling hold', async (t) => {
  const h = await harness(t, { sampling: { sampler: 'traceidratio', ratio: 0, maxHeldSpansPerJob: 100, maxHeldSpans: 1000 } });
  const payload = makeJobPayload({
    id: 502,
    contract: { kind: 'variable' },
  });
  h.tracker.editJobPayload(JSON.stringify(payload), RUNNER_REQUEST, nowNanos());
  t.equal(h.tracker.jobContext(502)?.sampled, false, 'the sampler dropped it');
  run(h.tracker, 502, payload.token as string, 'success');
  await h.pipeline.flush(1000);
  t.equal(h.receiver.spans.length, 0, 'its spans are not exported');
  t.equal((await h.histogram(CI_METRIC.jobDuration))[0]?.value.count, 1, 'but the job is counted');
});

t.test('without CiMetrics a job without telemetry is not followed (as before metrics)', async (t) => {
  const h = await harness(t, { ciMetrics: undefined });
  h.tracker.editJobPayload(JSON.stringify(makeJobPayload({ id: 503, contract: { kind: 'none' } })), RUNNER_REQUEST, nowNanos());
  t.equal(h.tracker.activeJobs, 0);
  t.notOk(h.tracker.observesTracePatch(503, undefined), 'its log is not observed');
});

t.test('artifact transfers: the executor of the followed job whose token is presented, else unknown', async (t) => {
  const h = await harness(t);
  const a = makeJobPayload({ id: 601, contract: { kind: 'none' } });
  const b = makeJobPayload({ id: 602, contract: { kind: 'none' } });
  h.tracker.editJobPayload(JSON.stringify(a), RUNNER_REQUEST, nowNanos());
  h.tracker.editJobPayload(JSON.stringify(b), RUNNER_REQUEST, nowNanos());
  const tokenA = a.token as string;
  const tokenB = b.token as string;
  // Uploads: the path's own job, when its token is presented.
  h.tracker.artifactTransfer({ jobId: 601, direction: 'upload', jobToken: tokenA, bytes: 100, status: 201, complete: true });
  h.tracker.artifactTransfer({ jobId: 601, direction: 'upload', jobToken: tokenB, bytes: 10, status: 403, complete: true });
  h.tracker.artifactTransfer({ jobId: 999, direction: 'upload', jobToken: tokenA, bytes: 1, status: 403, complete: true });
  // Downloads: the path names the dependency; the token names the downloading job.
  h.tracker.artifactTransfer({ jobId: 555, direction: 'download', jobToken: tokenB, bytes: 2000, status: 200, complete: true });
  h.tracker.artifactTransfer({ jobId: 555, direction: 'download', jobToken: 'glcbt-stranger', bytes: 30, status: 401, complete: true });
  h.tracker.artifactTransfer({ jobId: 555, direction: 'download', bytes: 4, status: 200, complete: false });
  // histogram() reads any instrument's points; a counter's value is a number.
  const points = (await h.histogram(CI_METRIC.artifactIo)) as unknown as { attributes: Record<string, unknown>; value: number }[];
  const seen = points.map((p) => [
    p.attributes['ci.artifact.direction'],
    p.attributes['ci.artifact.outcome'],
    p.attributes[CI.runnerExecutor],
    p.value,
  ]);
  t.same(
    seen.sort(),
    [
      ['download', 'aborted', 'unknown', 4],
      ['download', 'client_error', 'unknown', 30],
      ['download', 'success', 'kubernetes', 2000],
      ['upload', 'client_error', 'unknown', 11],
      ['upload', 'success', 'kubernetes', 100],
    ],
    "a neighbour's token, an unfollowed job or no token: unknown",
  );
  t.equal(h.tracker.activeJobs, 2, 'transfers change no job');
});

t.test('jobs ended every way leave no per-job state behind (docs/metrics.md#memory)', async (t) => {
  const h = await harness(t, { sampling: { sampler: 'traceidratio', ratio: 0, maxHeldSpansPerJob: 100, maxHeldSpans: 100_000 } });
  const log = buildJobLog('success', { start: new Date(), timestamps: true });
  const contracts = [{ kind: 'tracing' }, { kind: 'none' }, { kind: 'variable' }] as const;
  // How a job ends: the final update's state and GitLab's answer, a cancel, a repeated PUT, or never (the sweep).
  const endings = ['success', 'failed', 'gone-403', 'gone-404', 'canceled', 'put-202-then-200', 'assigned-twice', 'abandoned'] as const;
  let id = 10_000;
  let followedAtOnce = 0;
  for (let round = 0; round < 5; round++) {
    const open: { id: number; token: string; ending: (typeof endings)[number] }[] = [];
    for (const contract of contracts) {
      for (const ending of endings) {
        id += 1;
        const payload = makeJobPayload({ id, contract, timeoutSeconds: 60 });
        const token = payload.token as string;
        h.tracker.editJobPayload(JSON.stringify(payload), RUNNER_REQUEST, nowNanos());
        if (ending === 'assigned-twice') h.tracker.editJobPayload(JSON.stringify(payload), RUNNER_REQUEST, nowNanos());
        const put = (state: string, status: number, jobStatus?: string) =>
          h.tracker.jobUpdate({
            jobId: id,
            jobToken: token,
            body: Buffer.from(JSON.stringify({ token, state })),
            status,
            at: nowNanos(),
            ...(jobStatus ? { jobStatus } : {}),
          });
        put('running', 200);
        h.tracker.tracePatch({
          jobId: id,
          jobToken: token,
          contentRange: `0-${log.bytes.length - 1}`,
          body: log.bytes,
          status: 202,
          range: `0-${log.bytes.length}`,
          at: nowNanos(),
          ...(ending === 'canceled' ? { jobStatus: 'canceling' } : {}),
        });
        open.push({ id, token, ending });
      }
    }
    const during = h.tracker.perJobState;
    followedAtOnce = Math.max(followedAtOnce, during.jobs);
    t.equal(during.jobs, contracts.length * endings.length, `round ${round}: every job followed while it runs`);
    t.equal(during.tokens, during.jobs, `round ${round}: one token digest per followed job`);
    t.ok(during.heldSpans > 0, `round ${round}: the unsampled jobs' stage spans are held`);
    for (const j of open) {
      const put = (state: string, status: number) =>
        h.tracker.jobUpdate({
          jobId: j.id,
          jobToken: j.token,
          body: Buffer.from(JSON.stringify({ token: j.token, state })),
          status,
          at: nowNanos(),
        });
      if (j.ending === 'success' || j.ending === 'assigned-twice') put('success', 200);
      else if (j.ending === 'failed' || j.ending === 'canceled') put('failed', 200);
      else if (j.ending === 'gone-403') put('success', 403);
      else if (j.ending === 'gone-404') put('failed', 404);
      else if (j.ending === 'put-202-then-200') {
        put('success', 202);
        put('success', 200);
      }
    }
    t.equal(h.tracker.perJobState.jobs, contracts.length, `round ${round}: only the jobs without a final update are left`);
    h.tracker.sweep(Date.now() + 61_000);
    t.same(h.tracker.perJobState, { jobs: 0, tokens: 0, heldSpans: 0 }, `round ${round}: nothing kept for ended jobs`);
  }
  t.equal(followedAtOnce, contracts.length * endings.length);
  t.equal(
    (await h.histogram(CI_METRIC.jobDuration)).reduce((n, p) => n + p.value.count, 0),
    5 * contracts.length * endings.length,
    'every job was measured once',
  );
});
