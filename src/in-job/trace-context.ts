// W3C trace context as a job sees it: the `TRACEPARENT` / `TRACESTATE`
// environment carriers (OTel spec context/env-carriers.md) that the runner
// proxy injects into each job, and the fallback ids every party derives from
// the pipeline when GitLab sends no telemetry contract (derived as the proxy
// derives them: docs/runner-protocol.md#trace-ids). Pure; no I/O.
import { pipelineRootSpanId, rootPipelineId, traceIdFor, TRACE_ID_SCHEMES, type TraceIdScheme } from '../telemetry/pipeline-ids.js';
import { isValidSpanId, isValidTraceId } from '../telemetry/spans.js';
import { fallbackOptInValue } from '../telemetry/fallback-opt-in.js';

export interface TraceContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
  readonly traceState?: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** Parses a W3C `traceparent`; undefined for anything a conforming parser must reject. */
export function parseTraceparent(value: string | undefined): Omit<TraceContext, 'traceState'> | undefined {
  if (!value) return undefined;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string?];
  // Version ff is invalid; version 00 has exactly four fields, later versions may append more.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (!isValidTraceId(traceId) || !isValidSpanId(spanId)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/** Fallback mode is on when the pipeline opted in (GitLab versions without a telemetry contract). */
export function fallbackOptIn(env: Env): boolean {
  return fallbackOptInValue(env.GITLAB_OTEL_TELEMETRY);
}

/**
 * `GITLAB_OTEL_TRACE_IDS`: the trace id scheme, matching the proxy's
 * `telemetry.trace_ids`; `gitlab` (the default) when unset or unknown.
 */
export function traceIdScheme(env: Env): TraceIdScheme {
  const v = env.GITLAB_OTEL_TRACE_IDS?.trim().toLowerCase();
  return TRACE_ID_SCHEMES.find((s) => s === v) ?? 'gitlab';
}

/**
 * The pipeline root span's context, derived exactly as the proxy derives it:
 * the root pipeline from `GITLAB_OTEL_ROOT_PIPELINE_ID` when a parent passed it
 * down, else the job's own `CI_PIPELINE_ID`.
 */
export function pipelineRootContext(env: Env): TraceContext | undefined {
  const server = env.CI_SERVER_URL;
  const root = rootPipelineId(env);
  if (!server || !root) return undefined;
  return { traceId: traceIdFor(traceIdScheme(env), server, root.id), spanId: pipelineRootSpanId(server, root.id), sampled: true };
}

export type ParentSource = 'traceparent' | 'pipeline' | 'none';

/**
 * The parent of a span started inside a job: the job's `TRACEPARENT` first
 * (the proxy's job span), else — in fallback mode — the pipeline root span, else
 * none (a new trace). A malformed `TRACEPARENT` is ignored, never an error.
 */
export function jobParent(env: Env): { context?: TraceContext; source: ParentSource } {
  const tp = parseTraceparent(env.TRACEPARENT);
  if (tp) {
    const traceState = env.TRACESTATE?.trim();
    return { context: traceState ? { ...tp, traceState } : tp, source: 'traceparent' };
  }
  if (fallbackOptIn(env)) {
    const root = pipelineRootContext(env);
    if (root) return { context: root, source: 'pipeline' };
  }
  return { source: 'none' };
}
