// CI/CD metrics from every job the proxy sees (docs/metrics.md). They are
// derived from the spans the job tracker builds — `job_execution` and one span
// per runner build stage — before sampling and before export, so a job whose
// spans are sampled out or never exported still counts. Aggregation is the
// OpenTelemetry metrics SDK's; this module only maps a finished span to
// measurements with bounded attributes:
// - no job, pipeline or commit ids, ever;
// - project path and pipeline name only when opted in, capped (ValueCap);
// - failure reasons and stage names from closed sets, anything else `other`.
// Counters the alerts take a rate() of are created at 0 before their first
// count (docs/metrics.md#zero-series): Prometheus takes a series' first sample
// as the baseline, so a series first served at 1 would hide that first count.
import type { Attributes, Meter, ObservableResult } from '@opentelemetry/api';
import { CI, CICD, ERROR_TYPE } from '../../telemetry/attributes.js';
import type { SpanRecord } from '../../telemetry/spans.js';
import { OTHER, ValueCap } from '../../telemetry/metrics/value-cap.js';
import { isBuiltInStage } from '../job-log/log-spans.js';

/** Metric names, exported so dashboards and alerts can be checked against them (test/runner-config/). */
export const CI_METRIC = {
  jobDuration: 'ci.job.duration',
  jobQueueDuration: 'ci.job.queue.duration',
  stageDuration: 'ci.stage.duration',
  jobs: 'ci.jobs',
  systemErrors: 'cicd.system.errors',
  activeJobs: 'ci.runner.jobs.active',
  workerCount: 'cicd.worker.count',
  cacheOperations: 'ci.cache.operations',
  artifactIo: 'ci.artifact.io',
  attributeOverflow: 'gitlab_otel.metrics.attribute_overflow',
} as const;

/** Attribute keys used on metrics only (the rest come from telemetry/attributes.ts). */
export const METRIC_ATTR = {
  workerState: 'cicd.worker.state',
  attribute: 'gitlab_otel.attribute',
  artifactDirection: 'ci.artifact.direction',
  artifactOutcome: 'ci.artifact.outcome',
} as const;

/**
 * How an artifact transfer ended (docs/metrics.md#artifact-transfers): GitLab's
 * answer class when the runner received the whole answer, else `aborted`.
 */
export type ArtifactOutcome = 'success' | 'redirect' | 'client_error' | 'server_error' | 'aborted';

export function artifactOutcome(status: number | undefined, complete: boolean): ArtifactOutcome {
  if (!complete || status === undefined || status < 200 || status > 599) return 'aborted';
  if (status < 300) return 'success';
  if (status < 400) return 'redirect';
  return status < 500 ? 'client_error' : 'server_error';
}

/** One artifact upload or download that crossed the proxy, as CiMetrics counts it. */
export interface ArtifactTransfer {
  readonly direction: 'upload' | 'download';
  readonly bytes: number;
  readonly status?: number;
  readonly complete: boolean;
  /** The executor of the followed job the transfer belongs to; absent: not known (`unknown`). */
  readonly executor?: string;
}

/**
 * Failure reasons that blame the CI system rather than the job's code
 * (docs/metrics.md#system-errors): the runner's own (`runner_system_failure`,
 * `runner_external_dependency_failure`, `runner_interrupted`) and GitLab's
 * scheduling and storage failures. `script_failure`, timeouts of the script,
 * configuration errors and image-pull failures (usually a wrong image name)
 * are the job's.
 */
export const SYSTEM_FAILURE_REASONS: ReadonlySet<string> = new Set([
  'runner_system_failure',
  'runner_external_dependency_failure',
  'runner_interrupted',
  'runner_unsupported',
  'stuck_or_timeout_failure',
  'scheduler_failure',
  'data_integrity_failure',
  'api_failure',
]);

/** Every failure reason the runner can send (docs/metrics.md#system-errors); others are reported as `other`. */
const KNOWN_FAILURE_REASONS: ReadonlySet<string> = new Set([
  ...SYSTEM_FAILURE_REASONS,
  'script_failure',
  'job_execution_timeout',
  'image_pull_failure',
  'unknown_failure',
  'runner_configuration_error',
  'job_canceled',
  'archived_failure',
  'unmet_prerequisites',
  'missing_dependency_failure',
]);

/**
 * Executors whose `cicd.system.errors` series are created at 0 (docs/metrics.md#zero-series). The executor is
 * whatever the runner reports (gitlab-runner has eleven); past this many distinct values no more zero series are
 * made, so they add at most MAX_ZERO_EXECUTORS × SYSTEM_FAILURE_REASONS series, whatever runners send.
 */
export const MAX_ZERO_EXECUTORS = 16;

const KNOWN_STEPS: ReadonlySet<string> = new Set(['step_script', 'step_release', 'step_run']);
const JOB_STATUSES: ReadonlySet<string> = new Set(['success', 'failed', 'canceled', 'unknown']);
const STAGE_STATUSES: ReadonlySet<string> = new Set(['success', 'failed', 'canceled', 'skipped', 'unknown']);

/** Bucket bounds, seconds. Jobs and queues span seconds to hours; stages start well below a second. */
export const BUCKETS = {
  job: [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 10800],
  queue: [0.5, 1, 3, 10, 30, 60, 120, 300, 600, 900, 1800, 3600],
  stage: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
} as const;

export interface CiMetricsOptions {
  readonly meter: Meter;
  /** Opt-in: add `ci.project.path` to job metrics (capped at maxAttributeValues). */
  readonly projectAttribute: boolean;
  /** Opt-in: add `cicd.pipeline.name` to job metrics (capped at maxAttributeValues). */
  readonly pipelineNameAttribute: boolean;
  readonly maxAttributeValues: number;
  /** The runner manager's `concurrent`, when the operator states it: job slots for utilisation. */
  readonly concurrent?: number;
  /** Jobs the proxy is following now. */
  readonly activeJobs: () => number;
}

const secondsBetween = (startNs: bigint, endNs: bigint): number => (endNs > startNs ? Number(endNs - startNs) / 1e9 : 0);

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function oneOf(v: unknown, allowed: ReadonlySet<string>): string {
  const s = str(v);
  return s !== undefined && allowed.has(s) ? s : OTHER;
}

/** The attributes of a `cicd.system.errors` measurement: the same for a zero series and a count. */
function systemErrorAttributes(reason: string, executor: string): Attributes {
  return { [CICD.systemComponent]: 'gitlab-runner', [ERROR_TYPE]: reason, [CI.runnerExecutor]: executor };
}

export class CiMetrics {
  private readonly projects: ValueCap;
  private readonly pipelines: ValueCap;
  private readonly jobDuration;
  private readonly queueDuration;
  private readonly stageDuration;
  private readonly jobs;
  private readonly systemErrors;
  private readonly cacheOperations;
  private readonly artifactIo;
  private readonly overflow;
  /** Executors whose system-error series exist (at 0 or more). */
  private readonly zeroedExecutors = new Set<string>();

  constructor(private readonly options: CiMetricsOptions) {
    const { meter } = options;
    this.jobDuration = meter.createHistogram(CI_METRIC.jobDuration, {
      unit: 's',
      description: 'Duration of a job on this runner manager, from the runner picking it up to its final state',
      advice: { explicitBucketBoundaries: [...BUCKETS.job] },
    });
    this.queueDuration = meter.createHistogram(CI_METRIC.jobQueueDuration, {
      unit: 's',
      description: 'Time a job waited for a runner, as GitLab reports it (job_info.time_in_queue_seconds)',
      advice: { explicitBucketBoundaries: [...BUCKETS.queue] },
    });
    this.stageDuration = meter.createHistogram(CI_METRIC.stageDuration, {
      unit: 's',
      description: "Duration of one of the runner's build stages (a log section such as step_script), not a .gitlab-ci.yml stage",
      advice: { explicitBucketBoundaries: [...BUCKETS.stage] },
    });
    this.jobs = meter.createCounter(CI_METRIC.jobs, { unit: '{job}', description: 'Jobs finished, by result and failure reason' });
    this.systemErrors = meter.createCounter(CI_METRIC.systemErrors, {
      unit: '{error}',
      description: 'Jobs that failed because of the CI system (runner, scheduler, storage), never because of the script',
    });
    this.cacheOperations = meter.createCounter(CI_METRIC.cacheOperations, {
      unit: '{operation}',
      description: 'Cache restores with a known outcome, by ci.cache.hit (hit ratio = hit / all)',
    });
    this.artifactIo = meter.createCounter(CI_METRIC.artifactIo, {
      unit: 'By',
      description: 'Artifact body bytes that crossed the proxy, by ci.artifact.direction (upload, download) and ci.artifact.outcome',
    });
    this.overflow = meter.createCounter(CI_METRIC.attributeOverflow, {
      unit: '{value}',
      description: 'Opt-in attribute values reported as "other" because the distinct-value cap was reached',
    });
    this.projects = new ValueCap(options.maxAttributeValues, () => this.overflow.add(1, { [METRIC_ATTR.attribute]: CI.projectPath }));
    this.pipelines = new ValueCap(options.maxAttributeValues, () => this.overflow.add(1, { [METRIC_ATTR.attribute]: CICD.pipelineName }));

    meter
      .createObservableGauge(CI_METRIC.activeJobs, { unit: '{job}', description: 'Jobs this runner manager is running now' })
      .addCallback((r: ObservableResult) => r.observe(options.activeJobs()));
    const slots = options.concurrent;
    if (slots !== undefined && slots > 0) {
      // Job slots as CI/CD workers (semconv cicd.worker.count): busy ones run a job.
      meter
        .createObservableUpDownCounter(CI_METRIC.workerCount, {
          unit: '{count}',
          description: 'Job slots of this runner manager (its concurrent setting), by cicd.worker.state',
        })
        .addCallback((r: ObservableResult) => {
          const busy = Math.min(slots, options.activeJobs());
          r.observe(busy, { [METRIC_ATTR.workerState]: 'busy' });
          r.observe(slots - busy, { [METRIC_ATTR.workerState]: 'available' });
        });
    }
  }

  /** Measurements from finished spans: `job_execution` and stage spans count; user sections do not. */
  observe(spans: readonly SpanRecord[]): void {
    for (const span of spans) {
      if (span.name === 'job_execution') this.job(span);
      else if (span.attributes[CI.stageName] !== undefined) this.stage(span, spans);
    }
  }

  /**
   * A job was assigned (or resumed after a restart): its `job_execution` start attributes (job-span.ts
   * `jobStartAttributes`). Creates at 0, before the job can count in them, the series the system-failure alert
   * divides (docs/metrics.md#zero-series): this executor's `cicd.system.errors` for every system failure reason (once
   * per executor), and the `ci.jobs` series a success of this job will count in.
   */
  jobStarted(attributes: Attributes): void {
    const { executor, base } = this.baseOf(attributes, false);
    this.zeroSystemErrors(executor);
    this.jobs.add(0, { ...base, [CI.jobStatus]: 'success', [CICD.taskRunResult]: 'success' });
  }

  /** Bytes of one artifact transfer, aborted ones included (what crossed before the end). */
  artifactTransfer(t: ArtifactTransfer): void {
    if (!Number.isSafeInteger(t.bytes) || t.bytes < 0) return;
    this.artifactIo.add(t.bytes, {
      [METRIC_ATTR.artifactDirection]: t.direction === 'upload' ? 'upload' : 'download',
      [METRIC_ATTR.artifactOutcome]: artifactOutcome(t.status, t.complete),
      [CI.runnerExecutor]: str(t.executor) ?? 'unknown',
    });
  }

  private executorOf(span: SpanRecord): string {
    return str(span.attributes[CI.runnerExecutor]) ?? 'unknown';
  }

  /**
   * The attributes every job measurement carries: executor and the opt-in ones, capped. `countOverflow` false for
   * the zero series of a job's start, so that a substitution is counted once, when the job ends.
   */
  private baseOf(a: Attributes, countOverflow: boolean): { executor: string; base: Attributes } {
    const executor = str(a[CI.runnerExecutor]) ?? 'unknown';
    const base: Attributes = { [CI.runnerExecutor]: executor };
    const project = str(a[CI.projectPath]);
    if (this.options.projectAttribute && project !== undefined) base[CI.projectPath] = this.projects.admit(project, countOverflow);
    const pipeline = str(a[CICD.pipelineName]);
    if (this.options.pipelineNameAttribute && pipeline !== undefined)
      base[CICD.pipelineName] = this.pipelines.admit(pipeline, countOverflow);
    return { executor, base };
  }

  /** Every system failure reason's series for this executor, at 0 (once per executor, at most MAX_ZERO_EXECUTORS). */
  private zeroSystemErrors(executor: string): void {
    if (this.zeroedExecutors.has(executor) || this.zeroedExecutors.size >= MAX_ZERO_EXECUTORS) return;
    this.zeroedExecutors.add(executor);
    for (const reason of SYSTEM_FAILURE_REASONS) this.systemErrors.add(0, systemErrorAttributes(reason, executor));
  }

  private job(span: SpanRecord): void {
    const a = span.attributes;
    const { executor, base } = this.baseOf(a, true);
    const status = oneOf(a[CI.jobStatus], JOB_STATUSES);
    const result = str(a[CICD.taskRunResult]) ?? 'error';
    const reason = a[CI.jobFailureReason] !== undefined ? oneOf(a[CI.jobFailureReason], KNOWN_FAILURE_REASONS) : undefined;

    const byResult: Attributes = { ...base, [CI.jobStatus]: status, [CICD.taskRunResult]: result };
    this.jobDuration.record(secondsBetween(span.startTimeUnixNano, span.endTimeUnixNano), byResult);
    this.jobs.add(1, reason !== undefined ? { ...byResult, [CI.jobFailureReason]: reason } : byResult);
    // A job whose start was not seen (jobStarted) still creates its executor's zero series, for the next failure.
    this.zeroSystemErrors(executor);
    if (reason !== undefined && SYSTEM_FAILURE_REASONS.has(reason)) this.systemErrors.add(1, systemErrorAttributes(reason, executor));
    const queued = a[CI.jobTimeInQueue];
    // GitLab sends whole seconds, or null for a job that never queued (docs/metrics.md#queue-time).
    if (typeof queued === 'number' && Number.isFinite(queued) && queued >= 0) this.queueDuration.record(queued, base);
  }

  private stage(span: SpanRecord, batch: readonly SpanRecord[]): void {
    const a = span.attributes;
    const job = batch.find((s) => s.name === 'job_execution' && s.spanId === span.parentSpanId);
    const executor = job ? this.executorOf(job) : (str(a[CI.runnerExecutor]) ?? 'unknown');
    const name = str(a[CI.stageName]) ?? OTHER;
    // The runner's stages are a closed set; of the `step_<name>` ones GitLab
    // only sends script, release and run (docs/runner-protocol.md#job-payload).
    const stage = isBuiltInStage(name) ? (name.startsWith('step_') && !KNOWN_STEPS.has(name) ? 'step_other' : name) : OTHER;
    this.stageDuration.record(secondsBetween(span.startTimeUnixNano, span.endTimeUnixNano), {
      [CI.stageName]: stage,
      [CI.stageStatus]: oneOf(a[CI.stageStatus], STAGE_STATUSES),
      [CI.runnerExecutor]: executor,
    });
    const hit = a[CI.cacheHit];
    if (typeof hit === 'boolean') this.cacheOperations.add(1, { [CI.cacheHit]: hit, [CI.runnerExecutor]: executor });
  }
}
