// Deterministic ids for a pipeline's trace, for jobs GitLab did not enable
// itself (the fallback variable) and for the in-job `pipeline-span` / `span`
// commands. Every party that knows the pipeline derives the same ids with no
// coordination: the proxy on any runner manager, and the `.post` job that
// exports the pipeline root span.
//
// Two trace id schemes (docs/runner-protocol.md#trace-ids):
//   - `gitlab` (default): the root pipeline id as 32 hex digits, as GitLab
//     derives `features.tracing.trace_id`, so our spans, GitLab's own job
//     spans and a runner that GitLab did enable all land in one trace;
//   - `instance-scoped`: a hash of the instance URL and the pipeline id, so two
//     GitLab instances exporting into one backend never share a trace id.
// The pipeline root span id is always instance-scoped: span ids only need to
// be unique within a trace, and hashing keeps them spread out.
import { createHash } from 'node:crypto';

const DOMAIN = 'gitlab-otel/v1';

export type TraceIdScheme = 'gitlab' | 'instance-scoped';
export const TRACE_ID_SCHEMES: readonly TraceIdScheme[] = ['gitlab', 'instance-scoped'];

const PIPELINE_ID = /^[1-9]\d{0,37}$/;

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

/** A pipeline id as CI variables and job payloads carry it: a positive decimal integer. */
export function isPipelineId(value: string | number | undefined): boolean {
  return value !== undefined && PIPELINE_ID.test(String(value));
}

/**
 * GitLab's trace id for a pipeline tree: the root pipeline id in hex, left-padded
 * to 32 digits (gitlab#590587's example: pipeline 1975306 → `…001e240a`).
 */
export function gitlabTraceId(rootPipelineId: string | number): string {
  if (!isPipelineId(rootPipelineId)) throw new RangeError('a pipeline id is a positive decimal integer');
  const hex = BigInt(rootPipelineId).toString(16);
  if (hex.length > 32) throw new RangeError('a pipeline id above 2^128 does not fit a trace id');
  return hex.padStart(32, '0');
}

/** The instance-scoped trace id (the `instance-scoped` scheme, and the key fallback sampling decides on). */
export function instanceScopedTraceId(serverUrl: string, pipelineId: string | number): string {
  return nonZeroHex(digest('trace', normaliseInstance(serverUrl), String(pipelineId)), 16);
}

/** The instance-scoped trace id under its earlier name (tests and the sampling bench use it as a uniform id). */
export const pipelineTraceId = instanceScopedTraceId;

/** The trace id of a pipeline tree under the given scheme. */
export function traceIdFor(scheme: TraceIdScheme, serverUrl: string, rootPipelineId: string | number): string {
  return scheme === 'gitlab' ? gitlabTraceId(rootPipelineId) : instanceScopedTraceId(serverUrl, rootPipelineId);
}

/** The span id of the pipeline's root span, parent of every job span in fallback mode. */
export function pipelineRootSpanId(serverUrl: string, pipelineId: string | number): string {
  return nonZeroHex(digest('pipeline-span', normaliseInstance(serverUrl), String(pipelineId)), 8);
}

/**
 * The root pipeline of the job's pipeline tree, as far as CI variables tell.
 * GitLab has no predefined variable for it, so a child pipeline knows its root
 * only when the parent passes `GITLAB_OTEL_ROOT_PIPELINE_ID` down (see
 * docs/runner-protocol.md#trace-ids); otherwise the job's own pipeline is its
 * root, which is exact for every top-level pipeline.
 */
export function rootPipelineId(vars: {
  readonly GITLAB_OTEL_ROOT_PIPELINE_ID?: string;
  readonly CI_PIPELINE_ID?: string;
}): { id: string; source: 'variable' | 'own-pipeline' } | undefined {
  const passed = vars.GITLAB_OTEL_ROOT_PIPELINE_ID?.trim();
  if (passed && isPipelineId(passed)) return { id: passed, source: 'variable' };
  const own = vars.CI_PIPELINE_ID?.trim();
  if (own && isPipelineId(own)) return { id: own, source: 'own-pipeline' };
  return undefined;
}
