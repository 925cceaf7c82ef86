// telemetry.thread: worker (docs/architecture.md#telemetry-thread): the same job path with tracking, the
// journal, export and CI/CD metrics in the telemetry worker; /healthz and /metrics from its snapshots; a
// worker that dies costs the runner nothing and is restarted.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryLogger } from '../support/memory-logger.js';
import { startLab, runLabJob } from '../../src/lab/lab.js';
import { traceparent } from '../../src/telemetry/spans.js';
import { eventually } from '../support/export.js';
import { parseExposition } from '../support/prometheus-text.js';
import { journalledOffset } from '../support/runner-proxy-child.js';
import { get } from '../support/http-get.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

t.test('worker thread: job_execution and stage spans reach the collector, the runner gets the edited payload', async (t) => {
  const log = memoryLogger();
  const lab = await startLab({ log, proxyConfig: { telemetry: { thread: 'worker' } } });
  t.teardown(() => lab.stop());
  t.equal(lab.proxy.thread, 'worker');
  const job = await runLabJob(lab, lab.runner(), {
    payload: { id: 5001, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
    scenario: 'success',
  });
  t.equal(job.result.finalStatus, 200);
  await lab.receiver!.waitForSpans(1 + job.log.sections.length, 10_000);
  const jobSpan = lab.receiver!.spans.find((s) => s.name === 'job_execution')!;
  t.equal(jobSpan.traceId, TRACE);
  t.equal(jobSpan.parentSpanId, PARENT);
  t.equal(job.received.variables.TRACEPARENT, traceparent(TRACE, jobSpan.spanId), 'TRACEPARENT names the job span the worker exported');
  t.equal(jobSpan.startTimeUnixNano, job.log.firstTimestamp, 'timed from the log the worker parsed');
  for (const stage of job.log.sections.filter((s) => s.kind === 'stage')) {
    const span = lab.receiver!.spans.filter((s) => s.name === stage.name && s.attributes['ci.stage.attempt'] === stage.attempt);
    t.equal(span.length, 1, `stage ${stage.name} exported once`);
    t.equal(span[0]!.parentSpanId, jobSpan.spanId);
  }
  t.notOk(
    log.lines.some((l) => l.level === 'error'),
    'no errors logged',
  );
});

t.test('worker thread: /metrics sums both threads without a duplicate family, /healthz comes from the snapshot', async (t) => {
  const lab = await startLab({ proxyConfig: { telemetry: { thread: 'worker' } } });
  t.teardown(() => lab.stop());
  await runLabJob(lab, lab.runner(), { payload: { id: 5011, contract: { kind: 'tracing', traceId: TRACE } }, scenario: 'success' });
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  await lab.proxy.pipeline.flush(2000);
  const admin = `http://127.0.0.1:${lab.proxy.adminAddress!.port}`;
  const metrics = await get(`${admin}/metrics`);
  t.equal(metrics.status, 200);
  const exposition = parseExposition(metrics.body);
  const names = exposition.families.map((f) => f.name);
  t.same([...new Set(names)].sort(), [...names].sort(), 'every family once');
  const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
    exposition.series.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  t.equal(value('gitlab_otel_negotiations_total', { outcome: 'tracing' }), 1, 'decided on the forwarding thread');
  t.equal(value('gitlab_otel_jobs_total', { contract: 'tracing', result: 'success' }), 1, 'ended in the worker');
  t.equal(value('gitlab_otel_proxy_requests_total', { route: 'job_request', status: '201' }), 1, 'forwarding counted once, not twice');
  t.ok((value('gitlab_otel_spans_exported_total', { endpoint: 'lab' }) ?? 0) > 0, "the worker's export counted");
  t.equal(value('ci_job_duration_count'), 1, "the worker's CI/CD metrics (its Prometheus reader) are served");
  t.equal(value('gitlab_otel_telemetry_worker_restarts_total'), 0);
  t.ok((value('gitlab_otel_telemetry_snapshot_age_seconds', { snapshot: 'metrics' }) ?? -1) >= 0, 'the metrics snapshot is fresh');

  // Health: posted on every job change and each second.
  await eventually(async () => JSON.parse((await get(`${admin}/healthz`)).body).jobs_active === 0, 10_000, 'no job active');
  const health = JSON.parse((await get(`${admin}/healthz`)).body) as Record<string, unknown>;
  t.match(health, {
    status: 'ok',
    jobs_active: 0,
    telemetry_thread: 'worker',
    telemetry_worker: 'up',
    requests_in_flight: Number,
    telemetry_buffered_bytes: 0,
    endpoints: [{ name: 'lab', state: 'up' }],
  });
  t.ok((health.telemetry_snapshot_age_ms as number) >= 0, 'the health snapshot has an age');
});

t.test('worker crash mid-job: the runner gets every byte forwarded, the worker restarts, the next job gets its spans', async (t) => {
  // The test-only crash message is honoured only with this variable in the worker's environment.
  process.env.GITLAB_OTEL_TEST_WORKER_CRASH = '1';
  t.teardown(() => delete process.env.GITLAB_OTEL_TEST_WORKER_CRASH);
  const log = memoryLogger();
  const lab = await startLab({ log, proxyConfig: { telemetry: { thread: 'worker' } } });
  t.teardown(() => lab.stop());
  const worker = lab.proxy.telemetryWorker!;
  const runner = lab.runner();
  const crashed = await runLabJob(lab, runner, {
    payload: { id: 5021, contract: { kind: 'tracing', traceId: TRACE } },
    scenario: 'success',
    patchSizes: [1000, 1000, 1000, 1_000_000],
    beforePatch: async (i) => {
      if (i === 1) {
        worker.testCrash();
        // The PATCHes from here on go while the worker is down or starting: forwarded, not observed.
        await eventually(() => worker.state !== 'up', 10_000, 'the worker died');
      }
      if (i === 3) t.ok(await worker.ready(10_000), 'the worker restarted (with backoff) while the job goes on');
    },
  });
  t.equal(crashed.result.finalStatus, 200, 'the job finished normally');
  t.same(lab.gitlab.traceOf(5021), crashed.log.bytes, 'GitLab has every byte of the log');
  t.equal(crashed.received.variables.TRACEPARENT?.slice(3, 35), TRACE, 'the runner got the edited payload before the crash');
  t.match(
    log.lines.find((l) => l.fields?.code === 'TELEMETRY_WORKER_EXITED'),
    { level: 'error', fields: { exit_code: 1 } },
    'the exit is logged with a stable code',
  );
  t.ok(
    log.lines.some((l) => l.fields?.code === 'TELEMETRY_WORKER_FAILED'),
    'the uncaught error is logged',
  );
  const restarts = parseExposition(await lab.proxy.metricsText()).series.find(
    (s) => s.name === 'gitlab_otel_telemetry_worker_restarts_total',
  );
  t.equal(restarts?.value, 1, 'one restart counted');

  const next = await runLabJob(lab, runner, {
    payload: { id: 5022, contract: { kind: 'tracing', traceId: '0af7651916cd43dd8448eb211c80319c' } },
    scenario: 'success',
  });
  t.equal(next.result.finalStatus, 200);
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution' && x.traceId === '0af7651916cd43dd8448eb211c80319c'), 10_000);
  const spans = lab.receiver!.spans.filter((s) => s.traceId === '0af7651916cd43dd8448eb211c80319c');
  t.equal(spans.length, 1 + next.log.sections.length, 'the job after the restart: its job span and every stage span');
});

t.test('worker crash without the test variable: the crash message is ignored', async (t) => {
  delete process.env.GITLAB_OTEL_TEST_WORKER_CRASH;
  const lab = await startLab({ proxyConfig: { telemetry: { thread: 'worker' } } });
  t.teardown(() => lab.stop());
  lab.proxy.telemetryWorker!.testCrash();
  // A flush is a round trip through the worker's message queue, after the crash message.
  await lab.proxy.pipeline.flush(2000);
  t.equal(lab.proxy.telemetryWorker!.state, 'up', 'still up');
  const restarts = parseExposition(await lab.proxy.metricsText()).series.find(
    (s) => s.name === 'gitlab_otel_telemetry_worker_restarts_total',
  );
  t.equal(restarts?.value, 0);
});

t.test(
  'worker crash with a spool: the restarted worker resumes the job from the journal and ends it with the ids the runner has',
  async (t) => {
    process.env.GITLAB_OTEL_TEST_WORKER_CRASH = '1';
    t.teardown(() => delete process.env.GITLAB_OTEL_TEST_WORKER_CRASH);
    const spool = mkdtempSync(join(tmpdir(), 'gitlab-otel-worker-crash-'));
    t.teardown(() => rmSync(spool, { recursive: true, force: true }));
    const log = memoryLogger();
    const lab = await startLab({ log, proxyConfig: { telemetry: { thread: 'worker' }, spool: { dir: spool } } });
    t.teardown(() => lab.stop());
    const worker = lab.proxy.telemetryWorker!;
    const job = await runLabJob(lab, lab.runner(), {
      payload: { id: 5031, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
      scenario: 'success',
      patchSizes: [1000, 1000, 1_000_000],
      beforePatch: async (i) => {
        if (i !== 1) return;
        await eventually(() => journalledOffset(spool, 5031) === 1000, 10_000, 'the first PATCH journalled');
        worker.testCrash();
        await eventually(() => worker.state !== 'up', 10_000, 'the worker died');
        // No PATCH goes while it is down here: the point is the journal, not the gap.
        t.ok(await worker.ready(10_000), 'the worker restarted');
        t.same(lab.proxy.tracker.jobContext(5031)?.spanId.length, 16, 'the forwarding thread follows the resumed job again');
      },
    });
    t.equal(job.result.finalStatus, 200);
    await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
    const jobSpan = lab.receiver!.spans.find((s) => s.name === 'job_execution')!;
    // A flush is a round trip through the worker: every line it logged before has arrived.
    await lab.proxy.pipeline.flush(2000);
    t.ok(
      log.lines.some((l) => l.msg === 'job telemetry resumed after restart' && l.fields?.job_id === 5031),
      'the new worker resumed the job from the journal',
    );
    t.ok(
      log.lines.some((l) => l.msg === 'job token re-learned from an exchange GitLab accepted' && l.fields?.job_id === 5031),
      "the job's token was learned again from an exchange GitLab accepted",
    );
    t.equal(job.received.variables.TRACEPARENT, traceparent(TRACE, jobSpan.spanId), 'job_execution has the span id the runner was handed');
    t.equal(jobSpan.parentSpanId, PARENT);
    t.equal(jobSpan.startTimeUnixNano, job.log.firstTimestamp, 'timed from the log stamps journalled before the crash');
    t.match(jobSpan.attributes, { 'ci.job.status': 'success', 'ci.log.bytes': job.log.bytes.length });
    t.ok(
      lab.receiver!.spans.some((s) => s.name === 'step_script' && s.parentSpanId === jobSpan.spanId),
      'a stage parsed by the new worker is a child of job_execution',
    );
    t.equal(journalledOffset(spool, 5031), undefined, 'the finished job left the journal');
  },
);
