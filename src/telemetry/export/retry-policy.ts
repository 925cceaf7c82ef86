// What to do after a failed Export call, per the OTLP specification (facts §3).
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

export function decideRetry(code: number, retryDelayMs: number | undefined, alreadyReauthenticated: boolean): RetryDecision {
  if (code === status.UNAUTHENTICATED) return alreadyReauthenticated ? { action: 'drop' } : { action: 'reauthenticate' };
  if (code === status.RESOURCE_EXHAUSTED) {
    // Without RetryInfo this is the size limit or a hard quota: retrying cannot help.
    return retryDelayMs === undefined ? { action: 'drop' } : { action: 'retry', minDelayMs: retryDelayMs };
  }
  if (RETRYABLE.has(code)) return { action: 'retry', minDelayMs: retryDelayMs ?? 0 };
  return { action: 'drop' };
}
