// Deterministic trace ids for the fallback negotiation (GitLab versions that
// send no telemetry contract). Every party that knows the GitLab instance and
// the pipeline id derives the same ids with no coordination: the proxy on any
// runner manager, and the `.post` job that exports the pipeline root span.
import { createHash } from 'node:crypto';

const DOMAIN = 'gitlab-otel/v1';

function digest(...parts: string[]): Buffer {
  return createHash('sha256')
    .update([DOMAIN, ...parts].join('\0'))
    .digest();
}

/** The instance as both sides see it: `CI_SERVER_URL`, lower-cased, without a trailing slash. */
export function normaliseInstance(serverUrl: string): string {
  return serverUrl.trim().replace(/\/+$/, '').toLowerCase();
}

function nonZeroHex(buf: Buffer, bytes: number): string {
  const hex = buf.subarray(0, bytes).toString('hex');
  // An all-zero id is invalid in W3C trace context; the chance is 2^-64 but cheap to rule out.
  return /^0+$/.test(hex) ? `${hex.slice(0, -1)}1` : hex;
}

export function pipelineTraceId(serverUrl: string, pipelineId: string | number): string {
  return nonZeroHex(digest('trace', normaliseInstance(serverUrl), String(pipelineId)), 16);
}

/** The span id of the pipeline's root span, parent of every job span in fallback mode. */
export function pipelineRootSpanId(serverUrl: string, pipelineId: string | number): string {
  return nonZeroHex(digest('pipeline-span', normaliseInstance(serverUrl), String(pipelineId)), 8);
}
