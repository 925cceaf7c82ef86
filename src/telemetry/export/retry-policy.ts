// What to do after a failed Export call, per the OTLP specification (docs/export.md#retry).
import { status } from '@grpc/grpc-js';

const RETRYABLE = new Set<number>([
  status.CANCELLED,
  status.DEADLINE_EXCEEDED,
  status.ABORTED,
  status.OUT_OF_RANGE,
  status.UNAVAILABLE,
  status.DATA_LOSS,
]);

export type RetryDecision =
  | { readonly action: 'retry'; readonly minDelayMs: number }
  /** Fetch a new token and try once more at once. */
  | { readonly action: 'reauthenticate' }
  | { readonly action: 'drop' };

/**
 * How a failed export is classified, whatever the transport: the endpoint's
 * retry loop acts on this, so gRPC and OTLP/HTTP share one loop (docs/export.md#retry).
 */
export type FailureClass = 'retryable' | 'unauthenticated' | 'permanent';

/** The gRPC status rules above, as a FailureClass. */
export function classifyGrpcStatus(code: status, retryDelayMs: number | undefined): FailureClass {
  if (code === status.UNAUTHENTICATED) return 'unauthenticated';
  if (code === status.RESOURCE_EXHAUSTED) return retryDelayMs === undefined ? 'permanent' : 'retryable';
  return RETRYABLE.has(code) ? 'retryable' : 'permanent';
}

/**
 * OTLP/HTTP: 429, 502, 503 and 504 are retryable, every other non-2xx status is
 * permanent (docs/export.md#retry). 401 gets one fresh token, as UNAUTHENTICATED does on gRPC.
 */
export function classifyHttpStatus(httpStatus: number): FailureClass {
  if (httpStatus === 401) return 'unauthenticated';
  return httpStatus === 429 || httpStatus === 502 || httpStatus === 503 || httpStatus === 504 ? 'retryable' : 'permanent';
}

/** The decision for a classified failure. */
export function decideFailure(failure: FailureClass, retryDelayMs: number | undefined, alreadyReauthenticated: boolean): RetryDecision {
  if (failure === 'unauthenticated') return alreadyReauthenticated ? { action: 'drop' } : { action: 'reauthenticate' };
  if (failure === 'retryable') return { action: 'retry', minDelayMs: retryDelayMs ?? 0 };
  return { action: 'drop' };
}

/**
 * `Retry-After` as RFC 9110 §10.2.3 defines it: delay-seconds or an HTTP date.
 * Undefined when absent or unreadable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!/[a-z]/i.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
