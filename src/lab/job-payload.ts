// Realistic job payloads (GitLab's 201 body), shaped like Rails'
// `API::Entities::Ci::JobRequest::Response` and the runner's `spec.Job`
// (docs/simulators.md#job-payloads). Secrets are where GitLab puts them
// (job token, repo_url, masked variables, registry credentials, dependency
// tokens), so tests can check none of them leaks.
//
// The default job is what GitLab 19 sends for a job of a top-level pipeline
// as GitLab's design and issue #11 have it (docs/runner-protocol.md#job-telemetry):
// `features.tracing` with the trace id derived from the root pipeline id, no
// `span_parent_id`, and `otel_endpoints` as OTLP/HTTP URL strings. The EE code
// we read later (docs/runner-protocol.md#trace-ids) sends another shape, built
// with `railsJobRunningSpanId` and `{url}` objects where tests need it.
import { createHash, randomBytes } from 'node:crypto';
import { gitlabTraceId } from '../telemetry/pipeline-ids.js';

/**
 * The span id the EE code read gives Rails' own `job_running` span and sends as
 * every job's `span_parent_id`: the first 16 hex digits of SHA-256 over
 * `<root pipeline id>:<job id>:running` (docs/runner-protocol.md#trace-ids).
 */
export function railsJobRunningSpanId(rootPipelineId: number, jobId: number): string {
  return createHash('sha256').update(`${rootPipelineId}:${jobId}:running`).digest('hex').slice(0, 16);
}

export type TelemetryContract =
  | { kind: 'none' }
  | {
      kind: 'tracing';
      /** Default: GitLab's derivation from the root pipeline id. */
      traceId?: string;
      /** Child-pipeline jobs only; undefined leaves the key out, '' and null are sent as given. */
      spanParentId?: string | null;
      /** Default: the payload options' `otelEndpoints`. */
      endpoints?: unknown[];
    }
  | { kind: 'job_telemetry'; traceId: string; parentSpanId: string }
  /** Our fallback: the job sets GITLAB_OTEL_TELEMETRY=true. */
  | { kind: 'variable' };

export interface JobPayloadOptions {
  id: number;
  /** Defaults to a fresh `glcbt-…` token. */
  token?: string;
  name?: string;
  stage?: string;
  pipelineId?: number;
  /** The root of the pipeline tree (a child pipeline's differs from its own); default `pipelineId`. */
  rootPipelineId?: number;
  /** The collectors GitLab names (its `ci_telemetry_otel_endpoint` setting, up to 2): OTLP/HTTP URL strings. Default none. */
  otelEndpoints?: unknown[];
  projectId?: number;
  projectPath?: string;
  ref?: string;
  sha?: string;
  runnerId?: number;
  serverUrl?: string;
  contract?: TelemetryContract;
  /** Extra user variables (key → value, masked when `masked`). */
  variables?: { key: string; value: string; masked?: boolean; public?: boolean }[];
  /** Pad the payload with this many extra variables (realistic payloads are 50–300 KiB). */
  padVariables?: number;
  timeoutSeconds?: number;
  /**
   * `job_info.time_in_queue_seconds`: GitLab sends whole seconds since the job
   * was queued, or null when it has no queued time (docs/metrics.md#queue-time). Default 1.
   */
  timeInQueueSeconds?: number | null;
}

export function jobToken(): string {
  return `glcbt-${randomBytes(10).toString('hex')}`;
}

export function makeJobPayload(o: JobPayloadOptions): Record<string, unknown> {
  const token = o.token ?? jobToken();
  const server = o.serverUrl ?? 'https://gitlab.example.com';
  const projectPath = o.projectPath ?? 'acme/shop';
  const projectId = o.projectId ?? 42;
  const pipelineId = o.pipelineId ?? 9001;
  const sha = o.sha ?? 'c0ffee5e0ddba11c0ffee5e0ddba11c0ffee5e0d';
  const ref = o.ref ?? 'main';
  const name = o.name ?? 'test';
  const stage = o.stage ?? 'test';
  const runnerId = o.runnerId ?? 7;
  const contract = o.contract ?? { kind: 'tracing' };
  const v = (key: string, value: string, pub = true, masked = false) => ({ key, value, public: pub, masked });
  const variables: Record<string, unknown>[] = [
    v('CI_JOB_ID', String(o.id)),
    v('CI_JOB_URL', `${server}/${projectPath}/-/jobs/${o.id}`),
    v('CI_JOB_TOKEN', token, false, true),
    v('CI_JOB_NAME', name),
    v('CI_JOB_STAGE', stage),
    v('CI_PIPELINE_ID', String(pipelineId)),
    v('CI_PIPELINE_IID', '311'),
    v('CI_PIPELINE_SOURCE', 'push'),
    v('CI_PIPELINE_URL', `${server}/${projectPath}/-/pipelines/${pipelineId}`),
    v('CI_PROJECT_ID', String(projectId)),
    v('CI_PROJECT_PATH', projectPath),
    v('CI_SERVER_URL', server),
    v('CI_RUNNER_ID', String(runnerId)),
    v('CI_RUNNER_DESCRIPTION', 'shared-runner-1'),
    v('CI_COMMIT_SHA', sha),
    v('CI_COMMIT_REF_NAME', ref),
    v('CI_REGISTRY_PASSWORD', token, false, true),
    v('CI_REPOSITORY_URL', `${server.replace('://', `://gitlab-ci-token:${token}@`)}/${projectPath}.git`, false),
  ];
  if (contract.kind === 'variable') variables.push(v('GITLAB_OTEL_TELEMETRY', 'true', false));
  for (const extra of o.variables ?? []) variables.push(v(extra.key, extra.value, extra.public ?? false, extra.masked ?? false));
  for (let i = 0; i < (o.padVariables ?? 0); i++) variables.push(v(`PADDING_${i}`, 'x'.repeat(200), false));

  const features: Record<string, unknown> = {
    trace_sections: true,
    failure_reasons: ['unknown_failure', 'script_failure', 'runner_system_failure', 'job_execution_timeout'],
  };
  const payload: Record<string, unknown> = {
    id: o.id,
    token,
    allow_git_fetch: true,
    job_info: {
      id: o.id,
      name,
      stage,
      pipeline_id: pipelineId,
      project_id: projectId,
      project_name: projectPath.split('/').pop(),
      project_full_path: projectPath,
      namespace_id: 12,
      root_namespace_id: 12,
      time_in_queue_seconds: o.timeInQueueSeconds === undefined ? 1 : o.timeInQueueSeconds,
      project_jobs_running_on_instance_runners_count: '+Inf',
      queue_size: 0,
      queue_depth: 0,
    },
    git_info: {
      repo_url: `${server.replace('://', `://gitlab-ci-token:${token}@`)}/${projectPath}.git`,
      repo_object_format: 'sha1',
      ref,
      sha,
      before_sha: '0000000000000000000000000000000000000000',
      ref_type: 'branch',
      refspecs: [`+refs/heads/${ref}:refs/remotes/origin/${ref}`],
      depth: 20,
      protected: false,
    },
    runner_info: { timeout: o.timeoutSeconds ?? 3600, runner_session_url: null },
    inputs: [],
    variables,
    steps: [
      { name: 'script', script: ['npm ci', 'npm test'], timeout: 3600, when: 'on_success', allow_failure: false },
      { name: 'after_script', script: ['echo done'], timeout: 3600, when: 'always', allow_failure: true },
    ],
    image: { name: 'node:22-alpine', entrypoint: null, ports: [], pull_policy: null },
    services: [],
    artifacts: [
      {
        name: 'report',
        untracked: false,
        paths: ['report.xml'],
        when: 'always',
        artifact_type: 'junit',
        artifact_format: 'gzip',
        expire_in: '30 days',
      },
    ],
    cache: [{ key: 'deps-main', untracked: false, policy: 'pull-push', paths: ['node_modules/'], when: 'on_success', fallback_keys: [] }],
    credentials: [{ type: 'registry', url: 'registry.example.com', username: 'gitlab-ci-token', password: token }],
    dependencies: [{ id: o.id - 1, name: 'build', token, artifacts_file: { filename: 'artifacts.zip', size: 1024 } }],
    features,
  };
  if (contract.kind === 'tracing') {
    const tracing: Record<string, unknown> = { trace_id: contract.traceId ?? gitlabTraceId(o.rootPipelineId ?? pipelineId) };
    if (contract.spanParentId !== undefined) tracing.span_parent_id = contract.spanParentId;
    tracing.otel_endpoints = contract.endpoints ?? o.otelEndpoints ?? [];
    features.tracing = tracing;
  }
  if (contract.kind === 'job_telemetry') {
    features.job_telemetry = true;
    payload.trace_context = { trace_id: contract.traceId, parent_span_id: contract.parentSpanId };
  }
  return payload;
}
