// Whether a job gets telemetry, with which trace context, which of GitLab's
// collectors the proxy serves, and what is left of `features.tracing` for the
// runner. Pure: a JobView and the proxy's policy in, a decision out.
// docs/runner-protocol.md#job-telemetry is the contract this follows:
//   - `features.tracing` (GitLab ≥ 19): the job span goes into `trace_id`,
//     under `span_parent_id` when there is one (a child-pipeline job in
//     GitLab's design; every job, as Rails' `job_running` span, in the EE code
//     read, docs/runner-protocol.md#trace-ids), and as a root span when there
//     is none (absent, null and "" are the same). An invalid `trace_id`
//     switches telemetry off.
//   - every collector GitLab names gets the job's spans: from the proxy where
//     it can serve it (ours replace the runner's native span there), from the
//     runner otherwise (its `features.tracing` then keeps just those);
//   - the seed contract (`features.job_telemetry` + `trace_context`);
//   - our fallback variable, with trace ids from pipeline-ids.ts.
import { endpointFromPayload, type PayloadOtelEndpoint } from '../../telemetry/export/settings.js';
import { pipelineRootSpanId, instanceScopedTraceId, rootPipelineId, traceIdFor, type TraceIdScheme } from '../../telemetry/pipeline-ids.js';
import { isValidSpanId, isValidTraceId } from '../../telemetry/spans.js';
import type { JobView, TracingFeature } from './payload.js';
import { fallbackOptInValue } from '../../telemetry/fallback-opt-in.js';
import { isJsonObject as isObject } from '../../json-guards.js';

export type NegotiationPolicy = 'payload' | 'payload-or-variable';
export type NativeRunnerSpan = 'replace' | 'keep';

/** Why a payload endpoint was left to the runner (the `reason` label of the metric). */
export type LeftToRunnerReason =
  | 'unsupported_scheme'
  | 'unsupported_auth'
  | 'invalid_url'
  /** The egress policy refuses the host, address or audience (docs/security.md#payload-endpoints). */
  | 'egress_policy'
  | 'refused'
  | 'not_served_by_config';

/** Whether the proxy can export to a payload endpoint; a reason when it cannot. */
export type ServesEndpoint = (endpoint: PayloadOtelEndpoint) => LeftToRunnerReason | undefined;

export interface NegotiationOptions {
  policy: NegotiationPolicy;
  /** `keep`: the runner keeps `features.tracing` whole and exports its own span; ours go to configured endpoints only. */
  nativeRunnerSpan: NativeRunnerSpan;
  /** false: the proxy serves none of GitLab's endpoints, so the runner keeps them all. */
  usePayloadEndpoints: boolean;
  /** The GitLab instance as the proxy knows it, when the job lacks CI_SERVER_URL. */
  upstreamUrl: string;
  /** Trace ids of fallback-enabled jobs; default `gitlab`. */
  traceIds?: TraceIdScheme;
  /** Default: whatever export settings can be made from the entry (endpointFromPayload). */
  servesEndpoint?: ServesEndpoint;
}

export type Contract = 'tracing' | 'job_telemetry' | 'variable';

/** What the runner receives of `features.tracing`. */
export type RunnerTracing =
  /** GitLab's bytes, untouched. */
  | { readonly action: 'keep' }
  /** Removed: the proxy serves every endpoint, and the runner exports nothing. */
  | { readonly action: 'remove' }
  /**
   * `otel_endpoints` replaced by these entries of GitLab's array (by index):
   * the ones the proxy does not serve, objects kept byte for byte and strings
   * written as `{"url": …}` so the runner's decoder accepts them.
   */
  | { readonly action: 'narrow'; readonly keep: readonly number[] };

export interface EndpointLeftToRunner {
  /** `scheme://host:port` only: never a path, query or user info. */
  readonly where: string;
  readonly reason: LeftToRunnerReason;
}

export type Negotiation =
  | { enabled: false; warning?: string }
  | {
      enabled: true;
      contract: Contract;
      traceId: string;
      /** The job span's parent; undefined: the job span is a root span of the trace. */
      parentSpanId?: string;
      runnerTracing: RunnerTracing;
      /** GitLab's endpoints the proxy serves (strings normalised to objects); made into export settings by endpointFromPayload. */
      payloadEndpoints: PayloadOtelEndpoint[];
      /** GitLab's endpoints the runner keeps: log one line and count each. */
      leftToRunner: EndpointLeftToRunner[];
      /** The id fallback sampling decides on (uniform even when the trace id is a small pipeline number). */
      samplingKey: string;
      warnings: string[];
    };

const REASONS: Record<string, LeftToRunnerReason> = {
  UNSUPPORTED_ENDPOINT_SCHEME: 'unsupported_scheme',
  UNSUPPORTED_AUTH_TYPE: 'unsupported_auth',
  INVALID_ENDPOINT_URL: 'invalid_url',
  EGRESS_REFUSED: 'egress_policy',
};

/** A ServesEndpoint that serves what the export side can build settings for with `defaults` (its egress policy included). */
export function servesWith(defaults?: Parameters<typeof endpointFromPayload>[1]): ServesEndpoint {
  return (endpoint) => {
    const made = endpointFromPayload(endpoint, defaults);
    return made.ok ? undefined : (REASONS[made.error.code] ?? 'refused');
  };
}

/** The default ServesEndpoint: the export side can build settings for it under the default egress policy. */
export const servesWithExportSettings: ServesEndpoint = servesWith();

/** `scheme://host:port` of a payload URL, for logs. */
export function endpointWhere(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(unparseable URL)';
  }
}

function describeId(v: unknown): string {
  if (v === undefined) return 'missing';
  if (typeof v !== 'string') return `a ${typeof v}`;
  if (/^0+$/.test(v)) return 'all zeros';
  return `"${v.slice(0, 40)}" (${v.length} chars)`;
}

function checkIds(traceId: unknown, parentId: unknown, names: [string, string]): { traceId: string; parentSpanId: string } | string {
  if (typeof traceId !== 'string' || !isValidTraceId(traceId)) {
    return `${names[0]} is ${describeId(traceId)}, expected 32 lowercase hex digits, not all zero`;
  }
  if (typeof parentId !== 'string' || !isValidSpanId(parentId)) {
    return `${names[1]} is ${describeId(parentId)}, expected 16 lowercase hex digits, not all zero`;
  }
  return { traceId, parentSpanId: parentId };
}

/** Splits GitLab's endpoints between the proxy and the runner. */
export function splitEndpoints(
  tracing: TracingFeature,
  options: Pick<NegotiationOptions, 'nativeRunnerSpan' | 'usePayloadEndpoints' | 'servesEndpoint'>,
): { served: PayloadOtelEndpoint[]; leftToRunner: EndpointLeftToRunner[]; runnerTracing: RunnerTracing } {
  const serves = options.servesEndpoint ?? servesWithExportSettings;
  if (options.nativeRunnerSpan === 'keep') {
    // The runner exports its own job_execution to all of them; ours would be a second job span there.
    const runnerTracing: RunnerTracing = tracing.stringEndpoints
      ? { action: 'narrow', keep: tracing.endpoints.map((e) => e.index) }
      : { action: 'keep' };
    return { served: [], leftToRunner: [], runnerTracing };
  }
  const served: PayloadOtelEndpoint[] = [];
  const leftToRunner: EndpointLeftToRunner[] = [];
  const keep: number[] = [];
  for (const { index, endpoint } of tracing.endpoints) {
    const reason = options.usePayloadEndpoints ? serves(endpoint) : 'not_served_by_config';
    if (reason === undefined) served.push(endpoint);
    else {
      keep.push(index);
      leftToRunner.push({ where: endpointWhere(endpoint.url), reason });
    }
  }
  let runnerTracing: RunnerTracing;
  if (keep.length === 0) runnerTracing = { action: 'remove' };
  else if (keep.length === tracing.endpoints.length && !tracing.stringEndpoints && tracing.endpointProblems.length === 0) {
    runnerTracing = { action: 'keep' };
  } else runnerTracing = { action: 'narrow', keep };
  return { served, leftToRunner, runnerTracing };
}

export function negotiate(job: JobView, options: NegotiationOptions): Negotiation {
  if (job.tracing !== undefined) {
    if (!job.tracing.ok) return { enabled: false, warning: job.tracing.problem };
    const tracing = job.tracing.value;
    const warnings = [...tracing.endpointProblems];
    if (tracing.spanParentProblem) warnings.push(`${tracing.spanParentProblem}; the job span is a root span of the trace`);
    const split = splitEndpoints(tracing, options);
    return {
      enabled: true,
      contract: 'tracing',
      traceId: tracing.traceId,
      ...(tracing.spanParentId !== undefined ? { parentSpanId: tracing.spanParentId } : {}),
      runnerTracing: split.runnerTracing,
      payloadEndpoints: split.served,
      leftToRunner: split.leftToRunner,
      samplingKey: tracing.traceId,
      warnings,
    };
  }
  if (job.jobTelemetry === true) {
    const tc = isObject(job.traceContext) ? job.traceContext : {};
    const ids = checkIds(tc.trace_id, tc.parent_span_id, ['trace_context.trace_id', 'trace_context.parent_span_id']);
    if (typeof ids === 'string') return { enabled: false, warning: ids };
    return {
      enabled: true,
      contract: 'job_telemetry',
      ...ids,
      runnerTracing: { action: 'keep' },
      payloadEndpoints: [],
      leftToRunner: [],
      samplingKey: ids.traceId,
      warnings: [],
    };
  }
  if (options.policy === 'payload-or-variable' && fallbackOptInValue(job.ci.GITLAB_OTEL_TELEMETRY)) {
    const root = rootPipelineId({
      GITLAB_OTEL_ROOT_PIPELINE_ID: job.ci.GITLAB_OTEL_ROOT_PIPELINE_ID,
      CI_PIPELINE_ID: job.ci.CI_PIPELINE_ID ?? (job.pipelineId !== undefined ? String(job.pipelineId) : undefined),
    });
    if (!root) return { enabled: false, warning: 'GITLAB_OTEL_TELEMETRY is on but the job has no CI_PIPELINE_ID' };
    const instance = job.ci.CI_SERVER_URL ?? options.upstreamUrl;
    return {
      enabled: true,
      contract: 'variable',
      traceId: traceIdFor(options.traceIds ?? 'gitlab', instance, root.id),
      parentSpanId: pipelineRootSpanId(instance, root.id),
      runnerTracing: { action: 'keep' },
      payloadEndpoints: [],
      leftToRunner: [],
      samplingKey: instanceScopedTraceId(instance, root.id),
      warnings: [],
    };
  }
  return { enabled: false };
}
