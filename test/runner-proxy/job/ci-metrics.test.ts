// CI/CD metrics derived from the spans the tracker builds: measured through
// the OpenTelemetry metrics SDK (collect()), so bucket counts, sums and
// attributes are what an exporter would send.
import t from 'tap';
import { DataPointType, MeterProvider, MetricReader, type HistogramMetricData, type MetricData } from '@opentelemetry/sdk-metrics';
import { CI, CICD, ERROR_TYPE } from '../../../src/telemetry/attributes.js';
import { SpanKind, SpanStatusCode, type SpanRecord } from '../../../src/telemetry/spans.js';
import {
  artifactOutcome,
  BUCKETS,
  CI_METRIC,
  CiMetrics,
  MAX_ZERO_EXECUTORS,
  METRIC_ATTR,
  SYSTEM_FAILURE_REASONS,
  type CiMetricsOptions,
} from '../../../src/runner-proxy/job/ci-metrics.js';

class PullReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

let spanSeq = 0;
const S = 1_000_000_000n;
function span(name: string, startS: number, endS: number, attributes: SpanRecord['attributes'], parentSpanId?: string): SpanRecord {
  spanSeq += 1;
  return {
    traceId: '0'.repeat(31) + '1',
    spanId: spanSeq.toString(16).padStart(16, '0'),
    parentSpanId,
    name,
    kind: SpanKind.INTERNAL,
    startTimeUnixNano: BigInt(startS) * S,
    endTimeUnixNano: BigInt(endS) * S,
    attributes,
    status: { code: SpanStatusCode.UNSET },
  };
}

function job(opts: {
  status: string;
  result: string;
  reason?: string;
  queue?: number | null;
  project?: string;
  durationS: number;
  executor?: string;
}) {
  const j = span('job_execution', 100, 100 + opts.durationS, {
    [CI.jobId]: 4242,
    [CI.pipelineId]: 77,
    [CI.jobStatus]: opts.status,
    [CICD.taskRunResult]: opts.result,
    [CI.runnerExecutor]: opts.executor ?? 'docker',
    [CI.projectPath]: opts.project ?? 'group/app',
    [CICD.pipelineName]: 'group/app',
    ...(opts.reason ? { [CI.jobFailureReason]: opts.reason, [ERROR_TYPE]: opts.reason } : {}),
    ...(opts.queue !== undefined && opts.queue !== null ? { [CI.jobTimeInQueue]: opts.queue } : {}),
  });
  return j;
}

function setup(over: Partial<CiMetricsOptions> = {}) {
  const reader = new PullReader();
  const provider = new MeterProvider({ readers: [reader] });
  let active = 0;
  const metrics = new CiMetrics({
    meter: provider.getMeter('gitlab-otel'),
    projectAttribute: false,
    pipelineNameAttribute: false,
    maxAttributeValues: 2,
    activeJobs: () => active,
    ...over,
  });
  const collect = async (): Promise<Map<string, MetricData>> => {
    const { resourceMetrics, errors } = await reader.collect();
    if (errors.length) throw new Error(String(errors[0]));
    const out = new Map<string, MetricData>();
    for (const sm of resourceMetrics.scopeMetrics) for (const m of sm.metrics) out.set(m.descriptor.name, m);
    return out;
  };
  return { metrics, collect, setActive: (n: number) => (active = n) };
}

t.test('job duration, queue time and job counts, with units and no ids as attributes', async (t) => {
  const { metrics, collect } = setup();
  metrics.observe([job({ status: 'success', result: 'success', durationS: 42, queue: 7 })]);
  metrics.observe([job({ status: 'failed', result: 'failure', reason: 'script_failure', durationS: 3, queue: 0 })]);
  metrics.observe([job({ status: 'success', result: 'success', durationS: 20000, queue: null })]);
  const m = await collect();

  const duration = m.get(CI_METRIC.jobDuration) as HistogramMetricData;
  t.equal(duration.descriptor.unit, 's');
  t.equal(duration.dataPointType, DataPointType.HISTOGRAM);
  const ok = duration.dataPoints.find((p) => p.attributes[CI.jobStatus] === 'success');
  t.equal(ok?.value.count, 2, 'two successful jobs');
  t.equal(ok?.value.sum, 20042, 'their durations add up');
  t.same(ok?.value.buckets.boundaries, [...BUCKETS.job]);
  t.equal(ok?.value.buckets.counts[BUCKETS.job.indexOf(60)], 1, '42 s lands in the (30, 60] bucket');
  t.equal(ok?.value.buckets.counts.at(-1), 1, '20000 s lands in the overflow bucket');

  const queue = m.get(CI_METRIC.jobQueueDuration) as HistogramMetricData;
  t.equal(queue.descriptor.unit, 's');
  t.equal(queue.dataPoints[0]?.value.count, 2, 'a null queue time is not a measurement');
  t.equal(queue.dataPoints[0]?.value.sum, 7);

  const jobs = m.get(CI_METRIC.jobs)!;
  t.equal(jobs.descriptor.unit, '{job}');
  const failed = jobs.dataPoints.find((p) => p.attributes[CI.jobStatus] === 'failed');
  t.equal(failed?.value, 1);
  t.equal(failed?.attributes[CI.jobFailureReason], 'script_failure');
  const sys = m.get(CI_METRIC.systemErrors)!.dataPoints;
  t.equal(sys.length, SYSTEM_FAILURE_REASONS.size, "the executor's zero series");
  t.ok(
    sys.every((p) => p.value === 0),
    'script_failure is never a system error',
  );

  for (const metric of m.values()) {
    for (const p of metric.dataPoints as { attributes: Record<string, unknown> }[]) {
      for (const key of [CI.jobId, CI.pipelineId, CI.projectPath, CICD.pipelineName])
        t.notOk(key in p.attributes, `${metric.descriptor.name} has no ${key}`);
    }
  }
});

t.test('system failures count as cicd.system.errors with error.type; unknown reasons become other', async (t) => {
  const { metrics, collect } = setup();
  metrics.observe([job({ status: 'failed', result: 'failure', reason: 'runner_system_failure', durationS: 1 })]);
  metrics.observe([job({ status: 'failed', result: 'failure', reason: 'stuck_or_timeout_failure', durationS: 1 })]);
  metrics.observe([job({ status: 'failed', result: 'failure', reason: 'image_pull_failure', durationS: 1 })]);
  metrics.observe([job({ status: 'failed', result: 'failure', reason: 'made_up_reason_with_a_job_id_1234', durationS: 1 })]);
  const m = await collect();
  const sys = m.get(CI_METRIC.systemErrors)!;
  t.same(
    sys.dataPoints
      .filter((p) => p.value !== 0)
      .map((p) => [p.attributes[ERROR_TYPE], p.value])
      .sort(),
    [
      ['runner_system_failure', 1],
      ['stuck_or_timeout_failure', 1],
    ],
  );
  t.same(sys.dataPoints.map((p) => p.attributes[ERROR_TYPE]).sort(), [...SYSTEM_FAILURE_REASONS].sort(), 'the others at 0, none else');
  t.ok(sys.dataPoints.every((p) => p.attributes[CICD.systemComponent] === 'gitlab-runner'));
  const reasons = m.get(CI_METRIC.jobs)!.dataPoints.map((p) => p.attributes[CI.jobFailureReason]);
  t.ok(reasons.includes('other') && !reasons.includes('made_up_reason_with_a_job_id_1234'), 'unknown reasons are bounded');
});

/** Points of a counter as [sorted attribute entries, value] (a series' identity is its attribute set). */
const points = (m: Map<string, MetricData>, name: string) =>
  (m.get(name)?.dataPoints ?? []).map((p) => ({ attributes: p.attributes, value: p.value as number }));

t.test("a job start creates its executor's system-error series at 0, once, with the attributes of a real count", async (t) => {
  const { metrics, collect } = setup();
  const started = (executor: string) => job({ status: 'success', result: 'success', durationS: 1, executor }).attributes;
  metrics.jobStarted(started('docker'));
  let m = await collect();
  const zero = points(m, CI_METRIC.systemErrors);
  t.same(
    zero.map((p) => p.attributes).sort((a, b) => String(a[ERROR_TYPE]).localeCompare(String(b[ERROR_TYPE]))),
    [...SYSTEM_FAILURE_REASONS].sort().map((reason) => ({
      [CICD.systemComponent]: 'gitlab-runner',
      [ERROR_TYPE]: reason,
      [CI.runnerExecutor]: 'docker',
    })),
    'one series per system failure reason, three attributes, before any job ended',
  );
  t.ok(
    zero.every((p) => p.value === 0),
    'all at 0',
  );
  t.same(
    points(m, CI_METRIC.jobs),
    [{ attributes: { [CI.runnerExecutor]: 'docker', [CI.jobStatus]: 'success', [CICD.taskRunResult]: 'success' }, value: 0 }],
    "ci.jobs: the series the job's success would count in, at 0",
  );

  // More jobs on the same executor, one of them a system failure: the same series, one of them counted.
  metrics.jobStarted(started('docker'));
  metrics.observe([job({ status: 'failed', result: 'failure', reason: 'runner_system_failure', durationS: 1 })]);
  metrics.jobStarted(started('docker'));
  metrics.observe([job({ status: 'success', result: 'success', durationS: 1 })]);
  m = await collect();
  const after = points(m, CI_METRIC.systemErrors);
  t.equal(after.length, SYSTEM_FAILURE_REASONS.size, 'no series added: the count went to its zero series');
  t.same(
    after.filter((p) => p.value !== 0),
    [
      {
        attributes: { [CICD.systemComponent]: 'gitlab-runner', [ERROR_TYPE]: 'runner_system_failure', [CI.runnerExecutor]: 'docker' },
        value: 1,
      },
    ],
  );
  t.same(
    points(m, CI_METRIC.jobs)
      .map((p) => [p.attributes[CI.jobStatus], p.value])
      .sort(),
    [
      ['failed', 1],
      ['success', 1],
    ],
    'job starts add nothing to ci.jobs',
  );

  // A second executor gets its own, once.
  metrics.jobStarted(started('kubernetes'));
  metrics.jobStarted(started('kubernetes'));
  m = await collect();
  const k8s = points(m, CI_METRIC.systemErrors).filter((p) => p.attributes[CI.runnerExecutor] === 'kubernetes');
  t.equal(k8s.length, SYSTEM_FAILURE_REASONS.size);
  t.ok(
    k8s.every((p) => p.value === 0),
    'at 0',
  );
  t.equal(points(m, CI_METRIC.systemErrors).length, 2 * SYSTEM_FAILURE_REASONS.size);
});

t.test('a job whose start was not seen creates the zero series when it ends; a runner without executor is unknown', async (t) => {
  const { metrics, collect } = setup();
  const j = job({ status: 'success', result: 'success', durationS: 1 });
  delete j.attributes[CI.runnerExecutor];
  metrics.observe([j]);
  const sys = points(await collect(), CI_METRIC.systemErrors);
  t.equal(sys.length, SYSTEM_FAILURE_REASONS.size);
  t.ok(
    sys.every((p) => p.attributes[CI.runnerExecutor] === 'unknown' && p.value === 0),
    'executor unknown, at 0',
  );
});

t.test('zero series for at most MAX_ZERO_EXECUTORS executors; failures past it still count', async (t) => {
  const { metrics, collect } = setup();
  const executors = Array.from({ length: MAX_ZERO_EXECUTORS + 3 }, (_, i) => `executor-${i}`);
  for (const executor of executors) metrics.jobStarted(job({ status: 'success', result: 'success', durationS: 1, executor }).attributes);
  let sys = points(await collect(), CI_METRIC.systemErrors);
  t.equal(sys.length, MAX_ZERO_EXECUTORS * SYSTEM_FAILURE_REASONS.size, 'bounded whatever the runners send');
  t.equal(new Set(sys.map((p) => p.attributes[CI.runnerExecutor])).size, MAX_ZERO_EXECUTORS, 'the first executors seen');
  const late = executors.at(-1)!;
  t.notOk(
    sys.some((p) => p.attributes[CI.runnerExecutor] === late),
    'none for a later one',
  );
  metrics.observe([job({ status: 'failed', result: 'failure', reason: 'scheduler_failure', durationS: 1, executor: late })]);
  sys = points(await collect(), CI_METRIC.systemErrors);
  t.same(
    sys.filter((p) => p.attributes[CI.runnerExecutor] === late).map((p) => [p.attributes[ERROR_TYPE], p.value]),
    [['scheduler_failure', 1]],
    'its failure is counted as before, from 1',
  );
});

t.test('opt-in attributes: the zero ci.jobs series carries them, capped, and a substitution is counted once per job', async (t) => {
  const { metrics, collect } = setup({ projectAttribute: true, pipelineNameAttribute: true, maxAttributeValues: 1 });
  for (const project of ['a/one', 'a/two']) {
    const attributes = job({ status: 'success', result: 'success', durationS: 1, project }).attributes;
    metrics.jobStarted(attributes);
    t.equal((await collect()).get(CI_METRIC.attributeOverflow)?.dataPoints[0]?.value ?? 0, 0, `${project}: nothing counted at its start`);
    metrics.observe([job({ status: 'success', result: 'success', durationS: 1, project })]);
  }
  const m = await collect();
  t.same(
    points(m, CI_METRIC.jobs)
      .map((p) => [p.attributes[CI.projectPath], p.attributes[CICD.pipelineName], p.value])
      .sort(),
    [
      ['a/one', 'group/app', 1],
      ['other', 'group/app', 1],
    ],
    'the zero series were the ones the jobs counted in: no series left at 0',
  );
  t.equal(m.get(CI_METRIC.attributeOverflow)!.dataPoints[0]?.value, 1, 'a/two substituted once, when its job ended');
  t.ok(
    points(m, CI_METRIC.systemErrors).every((p) => !(CI.projectPath in p.attributes)),
    'system errors never carry the project',
  );
});

t.test('stage durations by build stage, status and the job executor; cache hits', async (t) => {
  const { metrics, collect } = setup();
  const j = job({ status: 'success', result: 'success', durationS: 60, executor: 'kubernetes' });
  metrics.observe([
    span('restore_cache', 100, 102, { [CI.stageName]: 'restore_cache', [CI.stageStatus]: 'success', [CI.cacheHit]: true }, j.spanId),
    span('step_script', 102, 150, { [CI.stageName]: 'step_script', [CI.stageStatus]: 'success' }, j.spanId),
    span('build', 103, 110, { [CI.sectionName]: 'build' }, j.spanId),
    span('step_my_weird_step', 150, 151, { [CI.stageName]: 'step_my_weird_step', [CI.stageStatus]: 'success' }, j.spanId),
    span('something', 151, 152, { [CI.stageName]: 'user_section_123', [CI.stageStatus]: 'weird' }, j.spanId),
    j,
  ]);
  const m = await collect();
  const stage = m.get(CI_METRIC.stageDuration) as HistogramMetricData;
  t.equal(stage.descriptor.unit, 's');
  const byName = new Map(stage.dataPoints.map((p) => [p.attributes[CI.stageName], p]));
  t.same(
    [...byName.keys()].sort(),
    ['other', 'restore_cache', 'step_other', 'step_script'],
    'user sections are not stages; names are a closed set',
  );
  t.equal(byName.get('step_script')?.value.sum, 48);
  t.equal(byName.get('step_script')?.attributes[CI.runnerExecutor], 'kubernetes', 'the executor comes from the job span');
  t.equal(byName.get('other')?.attributes[CI.stageStatus], 'other', 'stage status is a closed set');
  const cache = m.get(CI_METRIC.cacheOperations)!;
  t.same(
    cache.dataPoints.map((p) => [p.attributes[CI.cacheHit], p.value]),
    [[true, 1]],
  );
});

t.test('opt-in project attribute is capped, with an other bucket and an overflow count', async (t) => {
  const { metrics, collect } = setup({ projectAttribute: true, maxAttributeValues: 2 });
  for (const p of ['a/one', 'a/two', 'a/three', 'a/four', 'a/one'])
    metrics.observe([job({ status: 'success', result: 'success', durationS: 1, project: p })]);
  const m = await collect();
  const projects = m.get(CI_METRIC.jobs)!.dataPoints.map((p) => [p.attributes[CI.projectPath], p.value]);
  t.same(projects.sort(), [
    ['a/one', 2],
    ['a/two', 1],
    ['other', 2],
  ]);
  t.equal(m.get(CI_METRIC.attributeOverflow)!.dataPoints[0]?.value, 2);
});

t.test('active jobs and job slots when concurrent is known', async (t) => {
  const { collect, setActive } = setup({ concurrent: 4 });
  setActive(3);
  let m = await collect();
  t.equal(m.get(CI_METRIC.activeJobs)!.dataPoints[0]?.value, 3);
  const slots = () => new Map(m.get(CI_METRIC.workerCount)!.dataPoints.map((p) => [p.attributes['cicd.worker.state'], p.value]));
  t.same([...slots()].sort(), [
    ['available', 1],
    ['busy', 3],
  ]);
  setActive(9);
  m = await collect();
  t.same(
    [...slots()].sort(),
    [
      ['available', 0],
      ['busy', 4],
    ],
    'never more busy slots than concurrent',
  );
  const none = setup();
  t.notOk((await none.collect()).has(CI_METRIC.workerCount), 'no slot metric without concurrent');
});

t.test('artifact outcome: GitLab answer class when the runner got the whole answer, else aborted', async (t) => {
  t.equal(artifactOutcome(201, true), 'success');
  t.equal(artifactOutcome(200, true), 'success');
  t.equal(artifactOutcome(302, true), 'redirect');
  t.equal(artifactOutcome(307, true), 'redirect');
  t.equal(artifactOutcome(403, true), 'client_error');
  t.equal(artifactOutcome(413, true), 'client_error');
  t.equal(artifactOutcome(502, true), 'server_error');
  t.equal(artifactOutcome(200, false), 'aborted', 'answer cut short');
  t.equal(artifactOutcome(undefined, false), 'aborted', 'no answer');
  t.equal(artifactOutcome(undefined, true), 'aborted', 'the proxy answered itself (GitLab unreachable)');
  t.equal(artifactOutcome(101, true), 'aborted');
  t.equal(artifactOutcome(600, true), 'aborted', 'not an HTTP status');
});

t.test('artifact bytes: one counter in By, by direction, outcome and executor; nothing else', async (t) => {
  const { metrics, collect } = setup();
  metrics.artifactTransfer({ direction: 'upload', bytes: 1000, status: 201, complete: true, executor: 'docker' });
  metrics.artifactTransfer({ direction: 'upload', bytes: 24, status: 201, complete: true, executor: 'docker' });
  metrics.artifactTransfer({ direction: 'upload', bytes: 500, complete: false, executor: 'docker' });
  metrics.artifactTransfer({ direction: 'download', bytes: 7, status: 302, complete: true });
  metrics.artifactTransfer({ direction: 'download', bytes: -1, status: 200, complete: true });
  metrics.artifactTransfer({ direction: 'download', bytes: 0.5, status: 200, complete: true });
  const io = (await collect()).get(CI_METRIC.artifactIo)!;
  t.equal(io.descriptor.unit, 'By');
  t.equal(io.dataPointType, DataPointType.SUM);
  const points = io.dataPoints.map((p) => [
    p.attributes[METRIC_ATTR.artifactDirection],
    p.attributes[METRIC_ATTR.artifactOutcome],
    p.attributes[CI.runnerExecutor],
    p.value,
  ]);
  t.same(
    points.sort(),
    [
      ['download', 'redirect', 'unknown', 7],
      ['upload', 'aborted', 'docker', 500],
      ['upload', 'success', 'docker', 1024],
    ],
    'negative or fractional counts are not bytes and are dropped',
  );
  t.ok(
    io.dataPoints.every((p) => Object.keys(p.attributes).length === 3),
    'three attributes, no more',
  );
});
