// Whether a job gets telemetry, and with which trace context. Pure: a JobView
// and the proxy's policy in, a decision out. Two generations of GitLab's
// contract exist (runner-protocol facts §2.8), plus our own fallback for
// GitLab versions that send neither.
import { pipelineRootSpanId, pipelineTraceId } from '../../telemetry/pipeline-ids.js';
import { isValidSpanId, isValidTraceId } from '../../telemetry/spans.js';
import type { PayloadOtelEndpoint } from '../../telemetry/export/settings.js';
import type { JobView } from './payload.js';

export type NegotiationPolicy = 'payload' | 'payload-or-variable';
export type NativeRunnerSpan = 'replace' | 'keep';

export interface NegotiationOptions {
  policy: NegotiationPolicy;
  nativeRunnerSpan: NativeRunnerSpan;
  usePayloadEndpoints: boolean;
  /** The GitLab instance as the proxy knows it, when the job lacks CI_SERVER_URL. */
  upstreamUrl: string;
}

export type Contract = 'tracing' | 'job_telemetry' | 'variable';

export type Negotiation =
  | { enabled: false; warning?: string }
  | {
      enabled: true;
      contract: Contract;
      traceId: string;
      parentSpanId: string;
      /** Remove `features.tracing` from what the runner receives (so only our job span exists). */
      removeNativeTracing: boolean;
      /** As GitLab sent them (strings normalised to objects); turned into export settings by endpointFromPayload. */
      payloadEndpoints: PayloadOtelEndpoint[];
      warnings: string[];
    };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

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

/** Normalises `otel_endpoints` to objects; scheme and auth are checked when export settings are made from them. */
export function readPayloadEndpoints(raw: unknown, warnings: string[]): PayloadOtelEndpoint[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    warnings.push('features.tracing.otel_endpoints is not an array; ignored');
    return [];
  }
  const out: PayloadOtelEndpoint[] = [];
  raw.forEach((entry: unknown, i) => {
    if (typeof entry === 'string') out.push({ url: entry });
    else if (isObject(entry) && typeof entry.url === 'string') out.push(entry as unknown as PayloadOtelEndpoint);
    else warnings.push(`features.tracing.otel_endpoints[${i}] has no url; ignored`);
  });
  return out;
}

export function negotiate(job: JobView, options: NegotiationOptions): Negotiation {
  if (job.tracing !== undefined && job.tracing !== null) {
    if (!isObject(job.tracing)) return { enabled: false, warning: 'features.tracing is not an object' };
    const ids = checkIds(job.tracing.trace_id, job.tracing.span_parent_id, [
      'features.tracing.trace_id',
      'features.tracing.span_parent_id',
    ]);
    if (typeof ids === 'string') return { enabled: false, warning: ids };
    const warnings: string[] = [];
    const keepNative = options.nativeRunnerSpan === 'keep';
    // With `keep`, the runner exports its own job_execution to the payload's
    // endpoints; sending ours there too would put two job spans in one backend.
    const payloadEndpoints = options.usePayloadEndpoints && !keepNative ? readPayloadEndpoints(job.tracing.otel_endpoints, warnings) : [];
    return {
      enabled: true,
      contract: 'tracing',
      ...ids,
      removeNativeTracing: !keepNative,
      payloadEndpoints,
      warnings,
    };
  }
  if (job.jobTelemetry === true) {
    const tc = isObject(job.traceContext) ? job.traceContext : {};
    const ids = checkIds(tc.trace_id, tc.parent_span_id, ['trace_context.trace_id', 'trace_context.parent_span_id']);
    if (typeof ids === 'string') return { enabled: false, warning: ids };
    return { enabled: true, contract: 'job_telemetry', ...ids, removeNativeTracing: false, payloadEndpoints: [], warnings: [] };
  }
  if (options.policy === 'payload-or-variable' && job.ci.GITLAB_OTEL_TELEMETRY === 'true') {
    const pipelineId = job.ci.CI_PIPELINE_ID ?? (job.pipelineId !== undefined ? String(job.pipelineId) : undefined);
    if (!pipelineId || !/^\d+$/.test(pipelineId)) {
      return { enabled: false, warning: 'GITLAB_OTEL_TELEMETRY=true but the job has no CI_PIPELINE_ID' };
    }
    const instance = job.ci.CI_SERVER_URL ?? options.upstreamUrl;
    return {
      enabled: true,
      contract: 'variable',
      traceId: pipelineTraceId(instance, pipelineId),
      parentSpanId: pipelineRootSpanId(instance, pipelineId),
      removeNativeTracing: false,
      payloadEndpoints: [],
      warnings: [],
    };
  }
  return { enabled: false };
}
