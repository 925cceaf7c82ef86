// Span attributes from GitLab's predefined CI variables
// (docs/gitlab-api.md#ci-variables). Only identifiers, names and URLs GitLab
// itself shows in the UI: never
// CI_REPOSITORY_URL (it embeds the job token), CI_JOB_TOKEN, id_tokens or any
// user variable. Pure; no I/O.
import type { Attributes } from '@opentelemetry/api';
import { CI, CICD, VCS } from '../telemetry/attributes.js';
import type { Env } from './trace-context.js';

function put(out: Record<string, string | number>, key: string, value: string | undefined, numeric = false): void {
  if (value === undefined || value === '') return;
  if (numeric && /^\d+$/.test(value)) out[key] = Number(value);
  else out[key] = value;
}

/** The job a span belongs to, GitLab-style (`ci.*`), so spans join GitLab's own job telemetry. */
export function jobContextAttributes(env: Env): Attributes {
  const out: Record<string, string | number> = {};
  put(out, CI.jobId, env.CI_JOB_ID, true);
  put(out, CI.jobName, env.CI_JOB_NAME);
  put(out, CI.jobStage, env.CI_JOB_STAGE);
  put(out, CI.pipelineId, env.CI_PIPELINE_ID, true);
  put(out, CI.projectId, env.CI_PROJECT_ID, true);
  return out;
}

/** `cicd.pipeline.result` values (semconv RC). */
export const PIPELINE_RESULTS = ['success', 'failure', 'error', 'timeout', 'cancellation', 'skip'] as const;
export type PipelineResult = (typeof PIPELINE_RESULTS)[number];

export function isPipelineResult(value: string): value is PipelineResult {
  return (PIPELINE_RESULTS as readonly string[]).includes(value);
}

/** A low-cardinality pipeline name: `workflow:name` when set, else the project path. */
export function pipelineName(env: Env): string {
  return env.CI_PIPELINE_NAME?.trim() || env.CI_PROJECT_PATH || 'pipeline';
}

/** The pipeline root span's attributes: semconv `cicd.pipeline.*` / `vcs.*` plus GitLab's `ci.*`. */
export function pipelineAttributes(env: Env, result: PipelineResult): Attributes {
  const out: Record<string, string | number> = {};
  out[CICD.pipelineName] = pipelineName(env);
  out[CICD.pipelineActionName] = 'RUN';
  out[CICD.pipelineResult] = result;
  put(out, CICD.pipelineRunId, env.CI_PIPELINE_ID);
  put(out, CICD.pipelineRunUrl, env.CI_PIPELINE_URL);
  put(out, CI.pipelineId, env.CI_PIPELINE_ID, true);
  put(out, CI.pipelineSource, env.CI_PIPELINE_SOURCE);
  put(out, CI.projectId, env.CI_PROJECT_ID, true);
  put(out, CI.projectPath, env.CI_PROJECT_PATH);
  out[VCS.providerName] = 'gitlab';
  put(out, VCS.repositoryName, env.CI_PROJECT_NAME);
  put(out, VCS.headRevision, env.CI_COMMIT_SHA);
  put(out, VCS.headName, env.CI_COMMIT_TAG || env.CI_COMMIT_BRANCH || env.CI_COMMIT_REF_NAME);
  if (env.CI_COMMIT_TAG) out[VCS.headType] = 'tag';
  else if (env.CI_COMMIT_BRANCH || env.CI_COMMIT_REF_NAME) out[VCS.headType] = 'branch';
  return out;
}

/** ISO 8601 (`CI_PIPELINE_CREATED_AT`) to Unix nanoseconds; undefined when it does not parse. */
export function isoToNanos(value: string | undefined): bigint | undefined {
  if (!value) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? BigInt(ms) * 1_000_000n : undefined;
}
