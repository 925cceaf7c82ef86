// CI/CD metrics end to end (docs/metrics.md): jobs run by the runner simulator
// through the real proxy against the GitLab simulator; the OTLP metrics the
// proxy exports are decoded by the real receiver, the /metrics text parsed by a
// real Prometheus text parser. Histogram counts and bucket sums are checked
// against the jobs run (their log's stamps) and the queue time against what the
// simulator put in job_info.
import t from 'tap';
import { startLab, type Lab } from '../../src/lab/lab.js';
import { buildJobLog, type JobLogScenario } from '../../src/lab/job-log-builder.js';
import { makeJobPayload, type JobPayloadOptions } from '../../src/lab/job-payload.js';
import type { RunnerSimulator } from '../../src/lab/runner.js';
import { CI, CICD, ERROR_TYPE } from '../../src/telemetry/attributes.js';
import { BUCKETS, CI_METRIC, SYSTEM_FAILURE_REASONS } from '../../src/runner-proxy/job/ci-metrics.js';
import { OtlpHttpReceiver } from '../../src/telemetry/receiver.js';
import { distribution, TEMPORALITY, type ReceivedMetrics } from '../../src/telemetry/metrics/received-metrics.js';
import { parseExposition } from '../support/prometheus-text.js';
import { memoryLogger } from '../support/memory-logger.js';
import { status } from '@grpc/grpc-js';
import { servedCiMetrics } from '../support/ci-metric-names.js';
import { get } from '../support/http-get.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
/** A metrics-only job's token and masked value: they must reach neither /metrics nor the collector. */
const CANARY = { token: 'glcbt-CANARYmetricsjob01', masked: 'CANARY-metrics-masked-02' };
const NS = 1e9;

interface Run {
  /** Expected job_execution duration in seconds (the log's first to last stamp). */
  jobSeconds: number;
  /** Expected step_script duration in seconds. */
  scriptSeconds: number;
}

/** One job through the proxy: `failureReason` overrides the scenario's (e.g. a system failure on a script-failure log). */
async function runJob(
  lab: Lab,
  runner: RunnerSimulator,
  payload: JobPayloadOptions,
  o: { scenario?: JobLogScenario; failureReason?: string; scriptMs?: number } = {},
): Promise<Run> {
  lab.gitlab.enqueue(makeJobPayload(payload));
  const log = buildJobLog(o.scenario ?? 'success', {
    start: new Date(),
    timestamps: true,
    ...(o.scriptMs !== undefined ? { durationsMs: { step_script: o.scriptMs } } : {}),
  });
  const received = await runner.requestJob();
  if (!received) throw new Error('the runner got no job');
  await runner.runJob(received, {
    log: log.bytes,
    state: log.outcome.status,
    failureReason: o.failureReason ?? log.outcome.failureReason,
    exitCode: log.outcome.exitCode,
    // Every job uploads an archive, so the artifact series are served too (docs/metrics.md#artifact-transfers).
    artifactBytes: 4096,
  });
  const script = log.sections.find((s) => s.kind === 'stage' && s.name === 'step_script');
  if (!script?.endNs || log.firstTimestamp === undefined || log.lastTimestamp === undefined) throw new Error('log without stamps');
  return {
    jobSeconds: Number(log.lastTimestamp - log.firstTimestamp) / NS,
    scriptSeconds: Number(script.endNs - script.startNs) / NS,
  };
}

const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-6;

t.test(
  'OTLP/gRPC, cumulative: every job counted (with or without telemetry), queue time as GitLab sent it, system failures only',
  async (t) => {
    const lab = await startLab({ proxyConfig: { metrics: { concurrent: 4 } } });
    let stopped = false;
    t.teardown(() => (stopped ? lab.gitlab.stop().then(() => lab.receiver!.stop()) : lab.stop()));
    const runner = lab.runner();
    const runs: Run[] = [];
    // Exported (GitLab's tracing contract), success, queued 3 s.
    runs.push(
      await runJob(lab, runner, { id: 7101, contract: { kind: 'tracing', traceId: TRACE }, timeInQueueSeconds: 3 }, { scriptMs: 2_000 }),
    );
    // After one successful job, /metrics already serves the executor's system-error series, at 0: a later failure is
    // an increase rate() sees, not a series first served at 1 (docs/metrics.md#zero-series).
    const first = parseExposition((await get(`http://127.0.0.1:${lab.proxy.adminAddress!.port}/metrics`)).body);
    const zero = first.series.filter((s) => s.name === 'cicd_system_errors_total');
    t.same(
      zero.map((s) => s.labels).sort((a, b) => String(a.error_type).localeCompare(String(b.error_type))),
      [...SYSTEM_FAILURE_REASONS]
        .sort()
        .map((error_type) => ({ cicd_system_component: 'gitlab-runner', error_type, ci_runner_executor: 'docker' })),
      'one series per system failure reason, with the labels of a real count',
    );
    t.ok(
      zero.every((s) => s.value === 0),
      'all at 0',
    );
    // No telemetry at all: followed for metrics only; script failure, queued 45 s.
    runs.push(
      await runJob(
        lab,
        runner,
        {
          id: 7102,
          contract: { kind: 'none' },
          timeInQueueSeconds: 45,
          token: CANARY.token,
          variables: [{ key: 'DEPLOY_KEY', value: CANARY.masked, masked: true }],
        },
        { scenario: 'script-failure', scriptMs: 40_000 },
      ),
    );
    // No telemetry, a system failure; GitLab sent null (no queued time).
    runs.push(
      await runJob(
        lab,
        runner,
        { id: 7103, contract: { kind: 'none' }, timeInQueueSeconds: null },
        { scenario: 'script-failure', failureReason: 'runner_system_failure', scriptMs: 700 },
      ),
    );
    t.equal(lab.proxy.tracker.activeJobs, 0, 'every job ended');
    t.notOk(
      lab.receiver!.spans.some((s) => s.attributes[CI.jobId] === 7102 || s.attributes[CI.jobId] === 7103),
      'metrics-only jobs export no span',
    );

    // The same series on the admin listener, parsed with a real text-format parser.
    const scrape = await get(`http://127.0.0.1:${lab.proxy.adminAddress!.port}/metrics`);
    t.equal(scrape.status, 200);
    t.match(scrape.type, /^text\/plain; version=0\.0\.4/, "prom-client's Content-Type, valid for both parts");
    for (const secret of [CANARY.token, CANARY.masked, lab.runnerToken]) t.notOk(scrape.body.includes(secret), 'no secret on /metrics');
    const exposition = parseExposition(scrape.body);
    const series = (name: string, labels: Record<string, string> = {}) =>
      exposition.series.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    const total = (name: string, labels?: Record<string, string>) => series(name, labels).reduce((n, s) => n + s.value, 0);
    t.equal(total('ci_job_duration_count'), 3, 'three jobs in the job duration histogram');
    t.equal(total('ci_job_queue_duration_count'), 2, 'null queue time is no observation');
    t.equal(total('ci_job_queue_duration_sum'), 48);
    t.equal(total('cicd_system_errors_total', { error_type: 'runner_system_failure' }), 1);
    t.equal(total('cicd_system_errors_total'), 1, 'script_failure is not a system error');
    t.equal(total('cicd_worker_count', { cicd_worker_state: 'available' }), 4, 'no job running: every slot available');
    t.ok(total('gitlab_otel_jobs_total', { contract: 'none' }) === 2, 'the proxy counts the metrics-only jobs with contract none');
    // Every family the dashboards are checked against (test/support/ci-metric-names.ts) is served by a running proxy.
    const served = new Set(exposition.series.map((s) => s.name));
    const expected = (await servedCiMetrics()).series;
    for (const name of expected) {
      if (name.startsWith('gitlab_otel_metrics_attribute_overflow')) continue; // only once a cap is hit (next test)
      t.ok(served.has(name), `${name} served on /metrics`);
    }

    // Nothing went out yet (interval 60 s): the final export at stop carries it all.
    t.equal(lab.receiver!.metrics.exports.length, 0, 'no export before the interval');
    await lab.proxy.stop();
    stopped = true;
    const m = lab.receiver!.metrics;
    t.ok(m.exports.length >= 1, 'the final export on stop reached the collector');
    const exportedText = JSON.stringify(m.points, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    for (const secret of [CANARY.token, CANARY.masked, lab.runnerToken, 'gitlab-ci-token']) {
      t.notOk(exportedText.includes(secret), 'no secret in the exported metrics');
    }

    const job = distribution(m.of(CI_METRIC.jobDuration));
    t.equal(job?.count, 3);
    t.ok(
      close(
        job!.sum,
        runs.reduce((n, r) => n + r.jobSeconds, 0),
      ),
      `job duration sum ${job?.sum} is the jobs' log spans`,
    );
    t.same(job!.bounds, BUCKETS.job);
    t.equal(m.of(CI_METRIC.jobDuration)[0]!.unit, 's', 'histograms declare their unit');
    t.equal(m.of(CI_METRIC.jobDuration)[0]!.temporality, TEMPORALITY.cumulative);

    const failed = distribution(m.of(CI_METRIC.jobDuration, { [CI.jobStatus]: 'failed', [CICD.taskRunResult]: 'failure' }));
    t.equal(failed?.count, 2, 'by ci.job.status and cicd.pipeline.task.run.result');
    t.ok(
      m.of(CI_METRIC.jobDuration).every((p) => p.attributes[CI.runnerExecutor] === 'docker'),
      'by executor',
    );
    t.ok(
      m.of(CI_METRIC.jobDuration).every((p) => !(CI.jobId in p.attributes) && !(CI.projectPath in p.attributes)),
      'no job id; no project unless opted in',
    );

    const queue = distribution(m.of(CI_METRIC.jobQueueDuration));
    t.equal(queue?.count, 2);
    t.equal(queue?.sum, 48, 'queue sum = what the GitLab simulator put in job_info');
    const bucketOf = (v: number) => BUCKETS.queue.findIndex((b) => v <= b);
    const want = new Array<number>(BUCKETS.queue.length + 1).fill(0);
    want[bucketOf(3)]!++;
    want[bucketOf(45)]!++;
    t.same(queue?.counts, want, '3 s and 45 s in their buckets');

    const script = distribution(m.of(CI_METRIC.stageDuration, { [CI.stageName]: 'step_script' }));
    t.equal(script?.count, 3, 'step_script of every job, exported or not');
    t.ok(
      close(
        script!.sum,
        runs.reduce((n, r) => n + r.scriptSeconds, 0),
      ),
      `step_script sum ${script?.sum} matches the logs`,
    );
    t.equal(distribution(m.of(CI_METRIC.stageDuration, { [CI.stageName]: 'step_script', [CI.stageStatus]: 'failed' }))?.count, 2);

    const sys = m.of(CI_METRIC.systemErrors);
    t.same(
      sys.filter((p) => p.value !== 0).map((p) => [p.attributes[ERROR_TYPE], p.value]),
      [['runner_system_failure', 1]],
      'cicd.system.errors: the system failure only',
    );
    t.same(
      sys.map((p) => p.attributes[ERROR_TYPE]).sort(),
      [...SYSTEM_FAILURE_REASONS].sort(),
      'the zero series are exported over OTLP too, one per reason',
    );
    t.ok(
      sys.every((p) => p.temporality === TEMPORALITY.cumulative && p.attributes[CI.runnerExecutor] === 'docker'),
      'cumulative, by executor',
    );
    const jobs = m.of(CI_METRIC.jobs);
    t.equal(
      jobs.filter((p) => p.attributes[CI.jobFailureReason] === 'script_failure').reduce((n, p) => n + p.value!, 0),
      1,
      'the script failure is in ci.jobs by reason',
    );
    t.same(
      m
        .of(CI_METRIC.workerCount)
        .map((p) => [p.attributes['cicd.worker.state'], p.value])
        .sort(),
      [
        ['available', 4],
        ['busy', 0],
      ],
    );
  },
);

t.test('telemetry.thread: worker: the zero series are served while the first job of an executor runs', async (t) => {
  const lab = await startLab({ proxyConfig: { telemetry: { thread: 'worker' } } });
  t.teardown(() => lab.stop());
  const runner = lab.runner({ executor: 'shell' });
  lab.gitlab.enqueue(makeJobPayload({ id: 7151, contract: { kind: 'none' } }));
  const received = await runner.requestJob();
  if (!received) throw new Error('the runner got no job');
  const zero = async () =>
    parseExposition((await get(`http://127.0.0.1:${lab.proxy.adminAddress!.port}/metrics`)).body).series.filter(
      (s) => s.name === 'cicd_system_errors_total',
    );
  // /metrics carries the worker's snapshot, which follows the job's assignment: wait for it, bounded.
  const deadline = Date.now() + 10_000;
  while ((await zero()).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const served = await zero();
  t.same(
    served.map((s) => [s.labels.error_type, s.labels.ci_runner_executor, s.value]).sort(),
    [...SYSTEM_FAILURE_REASONS].sort().map((reason) => [reason, 'shell', 0]),
    'before the job has ended: every system failure reason for its executor, at 0',
  );
  const log = buildJobLog('success', { start: new Date(), timestamps: true });
  await runner.runJob(received, { log: log.bytes, state: 'success' });
});

t.test('OTLP/HTTP, delta, OTEL_METRIC_EXPORT_INTERVAL honoured; project attribute capped with an other bucket', async (t) => {
  const collector = await new OtlpHttpReceiver().start();
  t.teardown(() => collector.stop());
  const lab = await startLab({
    receiver: false,
    // As a deployment sets them: read by the product (the SDK's periodic reader reads none of them).
    env: {
      OTEL_METRIC_EXPORT_INTERVAL: '150',
      OTEL_METRIC_EXPORT_TIMEOUT: '100',
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'delta',
    },
    proxyConfig: {
      endpoints: [{ name: 'http', protocol: 'http/protobuf', url: collector.url, compression: 'gzip', queue: { batch_delay: '20ms' } }],
      metrics: { project_attribute: true, max_attribute_values: 2 },
    },
  });
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  const projects = ['acme/shop', 'acme/api', 'acme/web', 'acme/docs'];
  for (const [i, projectPath] of projects.entries()) {
    await runJob(lab, runner, { id: 7200 + i, contract: { kind: 'tracing', traceId: TRACE }, projectPath, timeInQueueSeconds: 1 });
  }
  const m: ReceivedMetrics = collector.metrics;
  // Exports arrive while the proxy runs: the interval came from the environment (the default is 60 s).
  await m.waitFor((x) => (distribution(x.of(CI_METRIC.jobDuration))?.count ?? 0) >= 4, 10_000);
  t.ok(m.exports.length >= 1, 'exported before stop');
  const points = m.of(CI_METRIC.jobDuration);
  t.ok(
    points.every((p) => p.temporality === TEMPORALITY.delta),
    'histograms are delta',
  );
  t.ok(
    m.of(CI_METRIC.jobs).every((p) => p.temporality === TEMPORALITY.delta),
    'counters are delta',
  );
  const byProject = new Map<string, number>();
  for (const p of points) {
    const k = String(p.attributes[CI.projectPath]);
    byProject.set(k, (byProject.get(k) ?? 0) + (p.count ?? 0));
  }
  t.same(Object.fromEntries(byProject), { 'acme/shop': 1, 'acme/api': 1, other: 2 }, 'two projects of their own, the rest other');
  const overflow = m.of(CI_METRIC.attributeOverflow).reduce((n, p) => n + p.value!, 0);
  t.equal(overflow, 2, 'each substitution counted');
  // Delta: later exports carry no repeat of the same jobs.
  const before = distribution(m.of(CI_METRIC.jobDuration))!.count;
  const exportsBefore = m.exports.length;
  await m.waitFor((x) => x.exports.length >= exportsBefore + 2, 5_000);
  t.equal(distribution(m.of(CI_METRIC.jobDuration))!.count, before, 'quiet intervals add nothing');
});

t.test(
  'telemetry.queue_span: job_queued from enqueue to pick-up, sibling of job_execution; job_execution keeps the queue time',
  async (t) => {
    const lab = await startLab({ proxyConfig: { telemetry: { queue_span: true } } });
    t.teardown(() => lab.stop());
    const runner = lab.runner();
    const parent = '00f067aa0ba902b7';
    const before = BigInt(Date.now()) * 1_000_000n;
    await runJob(lab, runner, { id: 7401, contract: { kind: 'tracing', traceId: TRACE, spanParentId: parent }, timeInQueueSeconds: 12 });
    const after = BigInt(Date.now()) * 1_000_000n;
    await runJob(lab, runner, { id: 7402, contract: { kind: 'tracing', traceId: TRACE }, timeInQueueSeconds: null });
    await lab.receiver!.waitFor((s) => s.filter((x) => x.name === 'job_execution').length === 2);
    await lab.proxy.pipeline.flush(2000);
    const spans = lab.receiver!.spans;
    const job = spans.find((s) => s.name === 'job_execution' && s.attributes[CI.jobId] === 7401)!;
    t.equal(job.attributes[CI.jobTimeInQueue], 12);
    const queued = spans.filter((s) => s.name === 'job_queued');
    t.equal(queued.length, 1, 'one job_queued span: none for a job GitLab sent null for');
    const q = queued[0]!;
    t.equal(q.traceId, job.traceId);
    t.equal(q.parentSpanId, parent, 'same parent as job_execution');
    t.equal(job.parentSpanId, parent);
    t.equal(q.endTimeUnixNano - q.startTimeUnixNano, 12_000_000_000n, 'as long as GitLab says the job waited');
    t.ok(q.endTimeUnixNano >= before && q.endTimeUnixNano <= after, 'ends at pick-up (the 201 going to the runner)');
    t.equal(q.attributes[CI.jobId], 7401);
  },
);

t.test('a collector refusing metrics: jobs unaffected, failures counted and logged once, nothing queued', async (t) => {
  const log = memoryLogger();
  const lab = await startLab({
    log,
    env: { OTEL_METRIC_EXPORT_INTERVAL: '100', OTEL_METRIC_EXPORT_TIMEOUT: '100' },
    receiver: { verify: () => ({ kind: 'error', code: status.UNAVAILABLE, details: 'collector overloaded' }) },
  });
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  for (const id of [7501, 7502]) {
    const r = await runJob(lab, runner, { id, contract: { kind: 'none' } });
    t.ok(r.jobSeconds > 0, `job ${id} ran to its end`);
  }
  const failures = async () => {
    const scrape = await get(`http://127.0.0.1:${lab.proxy.adminAddress!.port}/metrics`);
    return parseExposition(scrape.body)
      .series.filter((s) => s.name === 'gitlab_otel_metric_exports_total' && s.labels.outcome === 'UNAVAILABLE')
      .reduce((n, s) => n + s.value, 0);
  };
  const deadline = Date.now() + 5_000;
  while ((await failures()) < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.ok((await failures()) >= 3, 'every refused export counted by its code');
  t.equal(lab.receiver!.metrics.exports.length, 0, 'nothing accepted');
  t.equal(log.lines.filter((l) => l.msg === 'metric export failing').length, 1, 'one warning for the outage, not one per export');
});
