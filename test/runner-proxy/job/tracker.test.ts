// The job tracker on its own seam: the exchanges the forwarding server hands
// it (ExchangeObserver), fed directly, with the real export pipeline and a real
// OTLP receiver behind it, and a real journal on disk. The forwarding path
// itself is covered by test/e2e/.
import t, { type Test } from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { buildJobLog } from '../../../src/lab/job-log-builder.js';
import { makeJobPayload } from '../../../src/lab/job-payload.js';
import { memoryLogger } from '../../support/memory-logger.js';
import { JobJournal } from '../../../src/runner-proxy/job/journal.js';
import { JobTracker, type JobTrackerOptions } from '../../../src/runner-proxy/job/tracker.js';
import { createProxyMetrics } from '../../../src/runner-proxy/metrics.js';
import { CICD } from '../../../src/telemetry/attributes.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { OtlpReceiver } from '../../../src/telemetry/receiver.js';
import { nowNanos } from '../../../src/telemetry/spans.js';
import { endpointSettings, metric } from '../../support/export.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const RUNNER_REQUEST = Buffer.from(JSON.stringify({ token: 'glrt-x', info: { version: '19.4.0', executor: 'docker', platform: 'linux' } }));

async function harness(t: Test, over: Partial<JobTrackerOptions> = {}) {
  const receiver = await new OtlpReceiver().start();
  const registry = new Registry();
  const collector = endpointSettings('collector', receiver.url);
  const exportMetrics = createExportMetrics(registry);
  const pipeline = await ExportPipeline.create({ endpoints: [collector], metrics: exportMetrics, log: () => undefined });
  t.teardown(async () => {
    await pipeline.shutdown(1000);
    await receiver.stop();
  });
  const log = memoryLogger();
  const options: JobTrackerOptions = {
    negotiation: {
      policy: 'payload-or-variable',
      nativeRunnerSpan: 'replace',
      usePayloadEndpoints: false,
      upstreamUrl: 'https://gitlab.example.com',
    },
    sink: pipeline,
    endpoints: [collector],
    resourceAttributes: { 'service.name': 'tracker-test' },
    traceContext: { inject: true },
    logSpans: { maxSpansPerJob: 100, maxAttributeLength: 100 },
    abandonAfterMs: 0,
    log,
    metrics: { ...createProxyMetrics(registry), spansDropped: exportMetrics.dropped },
    ...over,
  };
  return { receiver, registry, pipeline, log, options, tracker: new JobTracker(options) };
}

/** The job assignment as the forwarding server reports it: GitLab's 201 body; returns what the runner gets. */
function assign(
  tracker: JobTracker,
  id: number,
  payload = makeJobPayload({ id, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } }),
) {
  const text = JSON.stringify(payload);
  const edited = tracker.editJobPayload(text, RUNNER_REQUEST, nowNanos());
  return { payload, token: payload.token as string, edited };
}

function variable(edited: string | undefined, key: string): string | undefined {
  const vars = (JSON.parse(edited ?? '{}') as { variables?: { key: string; value: string }[] }).variables ?? [];
  return vars.find((v) => v.key === key)?.value;
}

function update(tracker: JobTracker, jobId: number, token: string, state: string, status = 200, jobStatus?: string): void {
  tracker.jobUpdate({
    jobId,
    jobToken: token,
    body: Buffer.from(JSON.stringify({ token, state })),
    status,
    at: nowNanos(),
    ...(jobStatus ? { jobStatus } : {}),
  });
}

function patch(tracker: JobTracker, jobId: number, token: string, bytes: Buffer, start = 0, jobStatus?: string): void {
  tracker.tracePatch({
    jobId,
    jobToken: token,
    contentRange: `${start}-${start + bytes.length - 1}`,
    body: bytes,
    status: 202,
    range: `0-${start + bytes.length}`,
    at: nowNanos(),
    ...(jobStatus ? { jobStatus } : {}),
  });
}

t.test(
  'a job from assignment to final update: one job_execution span with the ids the runner was handed, and its stage spans',
  async (t) => {
    const h = await harness(t);
    const { token, edited } = assign(h.tracker, 101);
    t.ok(edited, 'the payload is edited');
    const traceparent = variable(edited, 'TRACEPARENT');
    t.match(traceparent, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`), 'TRACEPARENT in the job variables, sampled');
    const spanId = traceparent!.split('-')[2];
    t.same(h.tracker.jobContext(101), { traceId: TRACE, spanId, sampled: true });
    t.equal(h.tracker.activeJobs, 1);

    const log = buildJobLog('success', { start: new Date(), timestamps: true });
    update(h.tracker, 101, token, 'running');
    patch(h.tracker, 101, token, log.bytes);
    update(h.tracker, 101, token, 'success');
    t.equal(h.tracker.activeJobs, 0, 'the job ended with the accepted final update');

    await h.receiver.waitForSpans(1 + log.sections.length, 10_000);
    const job = h.receiver.spans.find((s) => s.name === 'job_execution')!;
    t.match(job, { traceId: TRACE, spanId, parentSpanId: PARENT });
    t.equal(job.attributes[CICD.taskRunResult], 'success');
    t.match(job.resource, { 'service.name': 'tracker-test' }, 'the configured resource');
    t.ok(Object.values(job.resource).includes('19.4.0'), "the runner's version from its job request is on the resource");
    const stages = h.receiver.spans.filter((s) => s.name !== 'job_execution');
    t.equal(stages.length, log.sections.length, 'one span per section of the log');
    t.ok(
      stages.every((s) => s.traceId === TRACE),
      'all in the job’s trace',
    );
    t.equal(await metric(h.registry, 'gitlab_otel_jobs_total', { result: 'success' }), 1);
    t.equal(await metric(h.registry, 'gitlab_otel_negotiations_total', { outcome: 'tracing' }), 1);
  },
);

t.test('only an accepted final update ends the job: 202 waits, 403 (GitLab already ended it) ends it', async (t) => {
  const h = await harness(t);
  const { token } = assign(h.tracker, 102);
  update(h.tracker, 102, token, 'failed', 202);
  t.equal(h.tracker.activeJobs, 1, '202: the runner will repeat the PUT');
  update(h.tracker, 102, token, 'failed', 403);
  t.equal(h.tracker.activeJobs, 0);
  await h.receiver.waitForSpans(1, 10_000);
  t.equal(h.receiver.spans[0]!.attributes[CICD.taskRunResult], 'failure');
  t.equal(h.receiver.spans[0]!.status.code, 2, 'ERROR');
});

t.test('GitLab saying the job is canceled makes the outcome a cancellation', async (t) => {
  const h = await harness(t);
  const { token } = assign(h.tracker, 103);
  patch(h.tracker, 103, token, Buffer.from('Running with gitlab-runner\n'), 0, 'canceling');
  update(h.tracker, 103, token, 'failed');
  await h.receiver.waitForSpans(1, 10_000);
  t.equal(h.receiver.spans.find((s) => s.name === 'job_execution')!.attributes[CICD.taskRunResult], 'cancellation');
});

t.test('payloads without telemetry are forwarded untouched and counted by outcome', async (t) => {
  const h = await harness(t);
  t.equal(h.tracker.editJobPayload('{"id": 1, oops', RUNNER_REQUEST, nowNanos()), undefined);
  t.match(
    h.log.lines.find((l) => l.msg.includes('not valid JSON')),
    { level: 'warn', fields: { bytes: 14 } },
    'the size is logged, not the content',
  );
  t.equal(assign(h.tracker, 104, makeJobPayload({ id: 104, contract: { kind: 'none' } })).edited, undefined);
  t.equal(h.tracker.activeJobs, 0);
  t.equal(await metric(h.registry, 'gitlab_otel_negotiations_total', { outcome: 'unreadable' }), 1);
  t.equal(await metric(h.registry, 'gitlab_otel_negotiations_total', { outcome: 'none' }), 1);
  t.equal(h.tracker.editJobRequest(Buffer.from('not json')), undefined, 'a job request that is not JSON is forwarded as is');
});

t.test('a job that never reports a final state is closed by the sweep after its timeout', async (t) => {
  const h = await harness(t);
  assign(
    h.tracker,
    105,
    makeJobPayload({ id: 105, timeoutSeconds: 60, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } }),
  );
  h.tracker.sweep(Date.now() + 30_000);
  t.equal(h.tracker.activeJobs, 1, 'not before its timeout');
  h.tracker.sweep(Date.now() + 61_000);
  t.equal(h.tracker.activeJobs, 0);
  await h.receiver.waitForSpans(1, 10_000);
  t.equal(h.receiver.spans[0]!.attributes[CICD.taskRunResult], 'error', 'abandoned');
  t.equal(await metric(h.registry, 'gitlab_otel_jobs_total', { result: 'abandoned' }), 1);
});

t.test('suspend, then a new tracker on the same journal: the job finishes with the ids the runner was handed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-tracker-'));
  const journal = JobJournal.open(dir);
  const h = await harness(t, { journal });
  const { token, edited } = assign(h.tracker, 106);
  const spanId = variable(edited, 'TRACEPARENT')!.split('-')[2];
  const log = buildJobLog('success', { start: new Date(), timestamps: true });
  const half = Math.floor(log.bytes.length / 2);
  patch(h.tracker, 106, token, log.bytes.subarray(0, half));
  h.tracker.suspend();
  update(h.tracker, 106, token, 'success');
  t.equal(h.tracker.activeJobs, 1, 'a suspended tracker observes nothing more');
  journal.close();

  const reopened = JobJournal.open(dir);
  const next = new JobTracker({ ...h.options, journal: reopened });
  t.equal(next.restore(), 1);
  t.same(next.jobContext(106), { traceId: TRACE, spanId, sampled: true });
  patch(next, 106, token, log.bytes.subarray(half), half);
  update(next, 106, token, 'success');
  t.equal(next.activeJobs, 0);
  await h.receiver.waitForSpans(1 + log.sections.length, 10_000);
  t.match(
    h.receiver.spans.find((s) => s.name === 'job_execution'),
    { traceId: TRACE, spanId, parentSpanId: PARENT },
  );
  t.equal(h.receiver.spans.length, 1 + log.sections.length, 'every stage once, across the restart');
  // The job's record goes once its spans are with the exporter.
  t.same(reopened.jobs(), []);
  reopened.close();
});

t.test('a journal that cannot be written costs the restart guarantee, never the job; warned once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-tracker-'));
  const journal = JobJournal.open(dir);
  journal.close(); // every write now fails (EBADF), as a full or read-only disk would
  const h = await harness(t, { journal });
  const { token } = assign(h.tracker, 107);
  await new Promise((r) => setImmediate(r));
  update(h.tracker, 107, token, 'running');
  await new Promise((r) => setImmediate(r));
  update(h.tracker, 107, token, 'success');
  await h.receiver.waitForSpans(1, 10_000);
  const warnings = h.log.lines.filter((l) => l.fields?.code === 'JOURNAL_UNAVAILABLE');
  t.equal(warnings.length, 1, 'one warning for the failure streak');
  t.match(warnings[0], { level: 'warn', fields: { errno: 'EBADF' } });
});
