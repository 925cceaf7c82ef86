// The job assignment: the runner's POST /api/v4/jobs/request and GitLab's 201
// answer carrying the job payload (docs/runner-protocol.md#job-payload). This
// module decides, from the payload alone, whether the job gets telemetry and
// under which contract, and what the runner is handed in its place: the
// request advertises `job_telemetry`, the payload loses GitLab's native tracing
// block when our job span replaces it, and gains TRACEPARENT/TRACESTATE (and
// the OTLP endpoint) as job variables. Pure: no I/O, no clock; the tracker
// logs and counts what it returns.
import { traceparent } from '../../telemetry/spans.js';
import { negotiate, type Negotiation, type NegotiationOptions, type RunnerTracing } from '../wire/negotiation.js';
import { readJobPayload, readRunnerInfo, type JobView, type RunnerView } from '../wire/payload.js';
import { advertiseJobTelemetry, editJobPayload, type JobVariableEdit } from '../wire/payload-edits.js';

export interface TraceContextOptions {
  /** Put TRACEPARENT / TRACESTATE into the job's variables. */
  inject: boolean;
  /** Hand this OTLP endpoint to the job as OTEL_EXPORTER_OTLP_ENDPOINT. */
  otlpEndpoint?: string;
}

/** The `gitlab_otel_negotiations_total` outcome label for a payload that got no telemetry. */
export type NegotiationRefusal = 'unreadable' | 'invalid' | 'none';

export type Assignment =
  | {
      readonly telemetry: false;
      readonly outcome: NegotiationRefusal;
      readonly warning?: string;
      /** Size of a payload that is not JSON (logged instead of any of its content). */
      readonly bytes?: number;
      /** The job, when the payload could be read. */
      readonly jobId?: number;
      /**
       * The payload's metadata and the runner's self-description when the payload
       * could be read: the job is still followed for CI/CD metrics (docs/metrics.md#every-job).
       */
      readonly metricsOnly?: { readonly view: JobView; readonly runner: RunnerView; readonly jobToken?: string };
    }
  | {
      readonly telemetry: true;
      readonly view: JobView;
      /** The payload's job token: the tracker keeps it to authenticate the job's exchanges (job-tokens.ts), nobody else sees it. */
      readonly jobToken?: string;
      readonly runner: RunnerView;
      readonly decision: Extract<Negotiation, { enabled: true }>;
    };

export function parseJson(buf: Buffer | string): unknown {
  try {
    return JSON.parse(typeof buf === 'string' ? buf : buf.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The runner's job request with `features.job_telemetry: true`; undefined: forward it unchanged. */
export function editJobRequest(body: Buffer): Buffer | undefined {
  const edited = advertiseJobTelemetry(body.toString('utf8'));
  return edited === undefined ? undefined : Buffer.from(edited, 'utf8');
}

/** Reads the 201 payload (and the runner's request, for its self-description) and negotiates the contract. */
export function readAssignment(payload: string, requestBody: Buffer | undefined, options: NegotiationOptions): Assignment {
  const json = parseJson(payload);
  if (json === undefined) {
    return {
      telemetry: false,
      outcome: 'unreadable',
      warning: 'job payload is not valid JSON; forwarded untouched, no telemetry',
      bytes: payload.length,
    };
  }
  const read = readJobPayload(json);
  if (!read.ok)
    return { telemetry: false, outcome: 'unreadable', warning: `job payload unusable for telemetry: ${read.problem}; forwarded untouched` };
  const decision = negotiate(read.value, options);
  const runner = readRunnerInfo(requestBody ? parseJson(requestBody) : undefined);
  const token = (json as { token?: unknown }).token;
  const jobToken = typeof token === 'string' && token !== '' ? { jobToken: token } : {};
  if (!decision.enabled) {
    const metricsOnly = { view: read.value, runner, ...jobToken };
    return decision.warning
      ? {
          telemetry: false,
          outcome: 'invalid',
          warning: `telemetry off for this job: ${decision.warning}`,
          jobId: read.value.jobId,
          metricsOnly,
        }
      : { telemetry: false, outcome: 'none', metricsOnly };
  }
  return { telemetry: true, view: read.value, runner, decision, ...jobToken };
}

/** The trace context handed to the job's own tools, as job variables. */
export function traceContextVariables(
  options: TraceContextOptions,
  view: Pick<JobView, 'hasVariablesArray' | 'definesTraceparent'>,
  job: { traceId: string; jobSpanId: string; sampled: boolean },
): JobVariableEdit[] {
  // A job that sets TRACEPARENT itself keeps its own; a payload without a variables array is not edited.
  if (!options.inject || !view.hasVariablesArray || view.definesTraceparent) return [];
  // An unsampled pipeline's tools should not export either (ParentBased samplers read this flag).
  const variables: JobVariableEdit[] = [
    { key: 'TRACEPARENT', value: traceparent(job.traceId, job.jobSpanId, job.sampled) },
    { key: 'TRACESTATE', value: '' },
  ];
  if (options.otlpEndpoint) variables.push({ key: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: options.otlpEndpoint });
  return variables;
}

/** The payload as the runner receives it; undefined: forward GitLab's bytes unchanged. */
export function editAssignedPayload(payload: string, tracing: RunnerTracing, variables: JobVariableEdit[]): string | undefined {
  return editJobPayload(payload, { tracing, variables });
}
