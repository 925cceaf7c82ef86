// The `job_execution` span: one per job, INTERNAL, child of GitLab's remote
// parent. Attributes in both vocabularies (see telemetry/attributes.ts): the
// `ci.*` set GitLab's own runner emits, and the OpenTelemetry CI/CD semantic
// conventions, whose sampling-relevant `cicd.pipeline.task.*` keys are known
// at span start. Pure: metadata in, SpanRecord out.
import type { Attributes } from '@opentelemetry/api';
import { CI, CICD, ERROR_TYPE, VCS, type TaskRunResult } from '../../telemetry/attributes.js';
import { SpanKind, SpanStatusCode, type SpanRecord } from '../../telemetry/spans.js';
import type { Contract } from '../wire/negotiation.js';
import type { JobView, RunnerView } from '../wire/payload.js';
import type { JobOutcome } from './job-outcome.js';

export interface JobSpanInput {
  job: JobView;
  runner: RunnerView;
  /** `none`: a job followed for CI/CD metrics only, whose span is never exported (docs/metrics.md#every-job). */
  contract: Contract | 'none';
  traceId: string;
  spanId: string;
  /** undefined: the job span is a root span (a top-level pipeline job; docs/runner-protocol.md#job-telemetry). */
  parentSpanId?: string;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  outcome: JobOutcome;
  /** Attributes learnt from the log (log size, truncation). */
  extra?: Attributes;
}

export function taskRunResult(outcome: JobOutcome): TaskRunResult {
  switch (outcome.state) {
    case 'success':
      return 'success';
    case 'canceled':
      return 'cancellation';
    case 'abandoned':
      return 'error';
    case 'failed':
      return outcome.failureReason === 'job_execution_timeout' ? 'timeout' : 'failure';
  }
}

/** Attributes known when the job starts (set at span start: sampling-relevant per semconv). */
export function jobStartAttributes(job: JobView, runner: RunnerView, contract: Contract | 'none'): Attributes {
  const ci = job.ci;
  const pipelineId = job.pipelineId ?? (ci.CI_PIPELINE_ID ? Number(ci.CI_PIPELINE_ID) : undefined);
  const runnerId = ci.CI_RUNNER_ID ? Number(ci.CI_RUNNER_ID) : undefined;
  const projectId = job.projectId ?? (ci.CI_PROJECT_ID ? Number(ci.CI_PROJECT_ID) : undefined);
  const attrs: Attributes = {
    [CI.jobId]: job.jobId,
    [CI.jobName]: job.name ?? ci.CI_JOB_NAME,
    [CI.jobStage]: job.stage ?? ci.CI_JOB_STAGE,
    [CI.pipelineId]: pipelineId,
    [CI.pipelineSource]: ci.CI_PIPELINE_SOURCE,
    [CI.projectId]: projectId,
    [CI.projectPath]: job.projectPath ?? ci.CI_PROJECT_PATH,
    [CI.runnerId]: runnerId,
    [CI.runnerExecutor]: runner.executor,
    [CI.runnerVersion]: runner.version,
    [CI.jobTimeInQueue]: job.timeInQueueSeconds,
    [CI.telemetryContract]: contract,
    [CICD.pipelineName]: ci.CI_PIPELINE_NAME || job.projectPath || ci.CI_PROJECT_PATH,
    [CICD.pipelineRunId]: pipelineId !== undefined ? String(pipelineId) : undefined,
    [CICD.pipelineRunUrl]: ci.CI_PIPELINE_URL,
    [CICD.taskName]: job.name ?? ci.CI_JOB_NAME,
    [CICD.taskRunId]: String(job.jobId),
    [CICD.taskRunUrl]: ci.CI_JOB_URL,
    [CICD.workerId]: runnerId !== undefined ? String(runnerId) : undefined,
    [CICD.workerName]: ci.CI_RUNNER_DESCRIPTION,
    [VCS.headName]: job.ref ?? ci.CI_COMMIT_REF_NAME,
    [VCS.headRevision]: job.sha ?? ci.CI_COMMIT_SHA,
    [VCS.headType]: job.refType,
  };
  for (const k of Object.keys(attrs)) if (attrs[k] === undefined || Number.isNaN(attrs[k])) delete attrs[k];
  return attrs;
}

export function buildJobSpan(input: JobSpanInput): SpanRecord {
  const { outcome } = input;
  const result = taskRunResult(outcome);
  const attributes: Attributes = {
    ...jobStartAttributes(input.job, input.runner, input.contract),
    ...input.extra,
    [CI.jobStatus]: outcome.state === 'abandoned' ? 'unknown' : outcome.state,
    [CICD.taskRunResult]: result,
  };
  let message: string | undefined;
  if (outcome.state === 'failed' || outcome.state === 'canceled') {
    if (outcome.failureReason) {
      attributes[CI.jobFailureReason] = outcome.failureReason;
      attributes[ERROR_TYPE] = outcome.failureReason;
    } else {
      attributes[ERROR_TYPE] = outcome.state === 'canceled' ? 'job_canceled' : 'unknown_failure';
    }
    message = outcome.failureReason ?? (outcome.state === 'canceled' ? 'job canceled' : 'job failed');
  }
  if (outcome.state === 'failed' && outcome.exitCode !== undefined) attributes[CI.jobExitCode] = outcome.exitCode;
  if (outcome.state === 'abandoned') {
    attributes[ERROR_TYPE] = 'abandoned';
    message = 'the job never reported a final state';
  }
  return {
    traceId: input.traceId,
    spanId: input.spanId,
    ...(input.parentSpanId !== undefined ? { parentSpanId: input.parentSpanId, parentIsRemote: true } : {}),
    name: 'job_execution',
    kind: SpanKind.INTERNAL,
    startTimeUnixNano: input.startTimeUnixNano,
    endTimeUnixNano: input.endTimeUnixNano,
    attributes,
    status: result === 'success' ? { code: SpanStatusCode.UNSET } : { code: SpanStatusCode.ERROR, message },
  };
}

export interface QueuedSpanInput {
  job: JobView;
  traceId: string;
  spanId: string;
  /** job_execution's parent: the queued span is its sibling. */
  parentSpanId?: string;
  /** When the runner picked the job up (the 201 went out). */
  pickedUpAt: bigint;
}

/**
 * The optional `job_queued` span (telemetry.queue_span): from enqueue to
 * pick-up, enqueue being the pick-up time minus GitLab's
 * `job_info.time_in_queue_seconds` (whole seconds; docs/metrics.md#queue-time).
 * undefined when GitLab sent no queue time (null: the job never queued).
 */
export function buildQueuedSpan(input: QueuedSpanInput): SpanRecord | undefined {
  const seconds = input.job.timeInQueueSeconds;
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return undefined;
  const queuedNs = BigInt(Math.round(seconds * 1e9));
  const start = input.pickedUpAt > queuedNs ? input.pickedUpAt - queuedNs : 0n;
  return {
    traceId: input.traceId,
    spanId: input.spanId,
    ...(input.parentSpanId !== undefined ? { parentSpanId: input.parentSpanId, parentIsRemote: true } : {}),
    name: 'job_queued',
    kind: SpanKind.INTERNAL,
    startTimeUnixNano: start,
    endTimeUnixNano: input.pickedUpAt,
    attributes: {
      [CI.jobId]: input.job.jobId,
      [CICD.taskRunId]: String(input.job.jobId),
      [CI.jobTimeInQueue]: seconds,
    },
    status: { code: SpanStatusCode.UNSET },
  };
}
