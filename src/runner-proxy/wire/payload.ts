// Wire types of the job request (runner → GitLab) and the job payload (GitLab's
// 201 answer), from the runner's `common/network.go` and `common/spec/spec.go`,
// and the one place that reads them. Reading is defensive: the payload is
// someone else's schema, and a field of the wrong type must switch telemetry
// off for that job, never throw into the forwarding path.
//
// Secrets live in this JSON (job token, variable values, registry credentials,
// repo_url with an embedded token, dependency tokens, secrets). `JobView` is
// the only thing the rest of the proxy sees, and it holds none of them.
import type { PayloadOtelEndpoint } from '../../telemetry/export/settings.js';
import { isJsonObject as isObject } from '../../json-guards.js';

/** `info` in POST /api/v4/jobs/request and every PUT /api/v4/jobs/:id. */
export interface RunnerInfoWire {
  name?: string;
  version?: string;
  revision?: string;
  platform?: string;
  architecture?: string;
  executor?: string;
  shell?: string;
  features?: Record<string, boolean>;
}

export interface JobRequestWire {
  token?: string;
  system_id?: string;
  last_update?: string;
  info?: RunnerInfoWire;
}

export interface JobVariableWire {
  key: string;
  value: string;
  public?: boolean;
  masked?: boolean;
  file?: boolean;
  raw?: boolean;
}

/**
 * `features.tracing` (GitLab ≥ 19; docs/runner-protocol.md#job-telemetry).
 * `span_parent_id`: only on child-pipeline jobs in GitLab's design, on every
 * job (Rails' `job_running` span) in the EE code read
 * (docs/runner-protocol.md#trace-ids); absent, `null` and `""` all mean "no
 * parent". `otel_endpoints` holds up to 2 entries: OTLP/HTTP URL strings in
 * GitLab's design, one `{url}` object in the EE code, `{url, auth}` objects in
 * the runner's struct.
 */
export interface TracingWire {
  trace_id?: string;
  span_parent_id?: string | null;
  otel_endpoints?: (OtelEndpointWire | string)[] | null;
}

export interface OtelEndpointWire {
  url: string;
  auth?: { type: string; http_bearer_gcp_oidc?: { audience?: string } } | null;
}

/** The seed contract: `features.job_telemetry` plus a top-level `trace_context`. */
export interface TraceContextWire {
  trace_id?: string;
  parent_span_id?: string;
}

export interface JobPayloadWire {
  id: number;
  token?: string;
  job_info?: {
    id?: number;
    name?: string;
    stage?: string;
    pipeline_id?: number;
    project_id?: number;
    project_name?: string;
    project_full_path?: string;
    time_in_queue_seconds?: number;
  };
  git_info?: { ref?: string; sha?: string; ref_type?: string; depth?: number; repo_url?: string };
  runner_info?: { timeout?: number; uuid?: string };
  variables?: JobVariableWire[];
  features?: {
    trace_sections?: boolean;
    failure_reasons?: string[];
    tracing?: TracingWire;
    job_telemetry?: boolean;
  };
  trace_context?: TraceContextWire;
}

/** What the proxy keeps of a job payload: metadata only, no secrets. */
export interface JobView {
  jobId: number;
  name?: string;
  stage?: string;
  pipelineId?: number;
  projectId?: number;
  projectPath?: string;
  timeInQueueSeconds?: number;
  ref?: string;
  sha?: string;
  refType?: string;
  gitDepth?: number;
  timeoutSeconds?: number;
  traceSections: boolean;
  /** Predefined, public, unmasked CI variables from the allowlist below. */
  ci: Partial<Record<CiVariable, string>>;
  /** `features.tracing` as read here; absent when GitLab sent none (or `null`). */
  tracing?: TracingRead;
  /** Raw seed-contract fields, validated later by negotiation. */
  jobTelemetry?: unknown;
  traceContext?: unknown;
  hasVariablesArray: boolean;
  /** The job defines TRACEPARENT itself; the proxy then leaves it alone. */
  definesTraceparent: boolean;
  /** Metadata fields of the wrong type: they only lose their attribute, but a schema drift should be visible. */
  schemaProblems: string[];
}

export interface RunnerView {
  version?: string;
  revision?: string;
  executor?: string;
  platform?: string;
  architecture?: string;
  shell?: string;
}

// Predefined variables with no secret in them. Anything else a job carries
// (user variables, masked values, file variables) is never read.
export const CI_VARIABLES = [
  'CI_SERVER_URL',
  'CI_PIPELINE_ID',
  'CI_PIPELINE_IID',
  'CI_PIPELINE_SOURCE',
  'CI_PIPELINE_NAME',
  'CI_PIPELINE_URL',
  'CI_JOB_URL',
  'CI_JOB_NAME',
  'CI_JOB_STAGE',
  'CI_PROJECT_ID',
  'CI_PROJECT_PATH',
  'CI_RUNNER_ID',
  'CI_RUNNER_DESCRIPTION',
  'CI_COMMIT_REF_NAME',
  'CI_COMMIT_SHA',
  'CI_DEFAULT_BRANCH',
  'GITLAB_OTEL_TELEMETRY',
  /** Passed down by a parent pipeline so fallback trace ids join GitLab's (docs/runner-protocol.md#trace-ids). */
  'GITLAB_OTEL_ROOT_PIPELINE_ID',
] as const;
export type CiVariable = (typeof CI_VARIABLES)[number];
const CI_VARIABLE_SET = new Set<string>(CI_VARIABLES);

export type ReadResult<T> = { ok: true; value: T } | { ok: false; problem: string };

function optional<T>(
  obj: Record<string, unknown>,
  key: string,
  type: 'string' | 'number' | 'boolean',
  where: string,
  problems: string[],
): T | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== type) {
    problems.push(`${where}.${key} is ${typeof v}, expected ${type}`);
    return undefined;
  }
  return v as T;
}

/** Reads a 201 job payload. `problem` says why it cannot be used for telemetry. */
export function readJobPayload(json: unknown): ReadResult<JobView> {
  if (!isObject(json)) return { ok: false, problem: 'job payload is not a JSON object' };
  if (typeof json.id !== 'number' || !Number.isSafeInteger(json.id) || json.id <= 0) {
    return { ok: false, problem: 'job payload has no valid numeric "id"' };
  }
  const problems: string[] = [];
  const view: JobView = {
    jobId: json.id,
    traceSections: true,
    ci: {},
    hasVariablesArray: false,
    definesTraceparent: false,
    schemaProblems: problems,
  };

  if (isObject(json.job_info)) {
    const ji = json.job_info;
    view.name = optional(ji, 'name', 'string', 'job_info', problems);
    view.stage = optional(ji, 'stage', 'string', 'job_info', problems);
    view.pipelineId = optional(ji, 'pipeline_id', 'number', 'job_info', problems);
    view.projectId = optional(ji, 'project_id', 'number', 'job_info', problems);
    view.projectPath = optional(ji, 'project_full_path', 'string', 'job_info', problems);
    view.timeInQueueSeconds = optional(ji, 'time_in_queue_seconds', 'number', 'job_info', problems);
  }
  if (isObject(json.git_info)) {
    const gi = json.git_info;
    view.ref = optional(gi, 'ref', 'string', 'git_info', problems);
    view.sha = optional(gi, 'sha', 'string', 'git_info', problems);
    view.refType = optional(gi, 'ref_type', 'string', 'git_info', problems);
    view.gitDepth = optional(gi, 'depth', 'number', 'git_info', problems);
  }
  if (isObject(json.runner_info)) {
    view.timeoutSeconds = optional(json.runner_info, 'timeout', 'number', 'runner_info', problems);
  }
  if (Array.isArray(json.variables)) {
    view.hasVariablesArray = true;
    for (const v of json.variables) {
      if (!isObject(v) || typeof v.key !== 'string') continue;
      if (v.key === 'TRACEPARENT') view.definesTraceparent = true;
      if (!CI_VARIABLE_SET.has(v.key)) continue;
      if (typeof v.value !== 'string' || v.masked === true || v.file === true) continue;
      view.ci[v.key as CiVariable] = v.value;
    }
  } else if (json.variables !== undefined && json.variables !== null) {
    problems.push('variables is not an array');
  }
  if (isObject(json.features)) {
    if (json.features.trace_sections === false) view.traceSections = false;
    if (json.features.tracing !== undefined && json.features.tracing !== null) view.tracing = readTracing(json.features.tracing);
    view.jobTelemetry = json.features.job_telemetry;
  }
  view.traceContext = json.trace_context;
  return { ok: true, value: view };
}

/** `features.tracing`, read: ids checked, endpoints as objects. */
export interface TracingFeature {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lowercase hex digits, not all zero; undefined: the job span is a root span of the trace. */
  readonly spanParentId?: string;
  /** Set when `span_parent_id` was present, non-empty and not a valid span id (the job is then a root span). */
  readonly spanParentProblem?: string;
  /** Entries with a `url`, strings turned into `{url}`, in GitLab's order. */
  readonly endpoints: readonly PayloadEndpointRead[];
  /** Entries that were not a string or an object with a string `url`. */
  readonly endpointProblems: readonly string[];
  /**
   * Some entries were plain strings. The runner's Go struct has no custom
   * decoder for them, so a payload that still carries them when it reaches
   * the runner fails to decode and the job is lost (docs/runner-protocol.md#job-telemetry).
   */
  readonly stringEndpoints: boolean;
}

export interface PayloadEndpointRead {
  /** Position in GitLab's `otel_endpoints` array. */
  readonly index: number;
  readonly endpoint: PayloadOtelEndpoint;
}

export type TracingRead = { readonly ok: true; readonly value: TracingFeature } | { readonly ok: false; readonly problem: string };

const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;

function describeId(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (typeof v !== 'string') return `a ${typeof v}`;
  if (/^0+$/.test(v)) return 'all zeros';
  return `${v.length} characters, not lowercase hex`;
}

function readOtelEndpoint(entry: unknown): PayloadOtelEndpoint | string {
  if (typeof entry === 'string') return { url: entry };
  if (!isObject(entry) || typeof entry.url !== 'string') return 'has no url';
  const auth = entry.auth;
  if (auth === undefined || auth === null) return { url: entry.url };
  // An auth block we cannot read is kept as its type name, so the endpoint counts as one we cannot serve.
  if (!isObject(auth) || typeof auth.type !== 'string') return { url: entry.url, auth: { type: 'malformed' } };
  const oidc = auth.http_bearer_gcp_oidc;
  const audience = isObject(oidc) && typeof oidc.audience === 'string' ? oidc.audience : undefined;
  return { url: entry.url, auth: { type: auth.type, ...(audience !== undefined ? { http_bearer_gcp_oidc: { audience } } : {}) } };
}

/** Reads `features.tracing`. Never throws: a malformed block only switches telemetry off for that job. */
export function readTracing(raw: unknown): TracingRead {
  if (!isObject(raw)) return { ok: false, problem: 'features.tracing is not an object' };
  const traceId = raw.trace_id;
  if (typeof traceId !== 'string' || !TRACE_ID.test(traceId) || /^0+$/.test(traceId)) {
    return {
      ok: false,
      problem: `features.tracing.trace_id is ${describeId(traceId)}, expected 32 lowercase hex digits, not all zero`,
    };
  }
  const parent = raw.span_parent_id;
  let spanParentId: string | undefined;
  let spanParentProblem: string | undefined;
  if (typeof parent === 'string' && SPAN_ID.test(parent) && !/^0+$/.test(parent)) spanParentId = parent;
  else if (parent !== undefined && parent !== null && parent !== '') {
    spanParentProblem = `features.tracing.span_parent_id is ${describeId(parent)}, expected 16 lowercase hex digits, not all zero`;
  }
  const endpoints: PayloadEndpointRead[] = [];
  const endpointProblems: string[] = [];
  let stringEndpoints = false;
  const list = raw.otel_endpoints;
  if (Array.isArray(list)) {
    list.forEach((entry: unknown, i) => {
      const read = readOtelEndpoint(entry);
      if (typeof read === 'string') endpointProblems.push(`features.tracing.otel_endpoints[${i}] ${read}`);
      else endpoints.push({ index: i, endpoint: read });
      if (typeof entry === 'string') stringEndpoints = true;
    });
  } else if (list !== undefined && list !== null) {
    endpointProblems.push('features.tracing.otel_endpoints is not an array');
  }
  return {
    ok: true,
    value: {
      traceId,
      ...(spanParentId !== undefined ? { spanParentId } : {}),
      ...(spanParentProblem !== undefined ? { spanParentProblem } : {}),
      endpoints,
      endpointProblems,
      stringEndpoints,
    },
  };
}

/** Reads the runner's self-description from a job request body. */
export function readRunnerInfo(json: unknown): RunnerView {
  if (!isObject(json) || !isObject(json.info)) return {};
  const info = json.info;
  const pick = (k: string): string | undefined => (typeof info[k] === 'string' ? info[k] : undefined);
  return {
    version: pick('version'),
    revision: pick('revision'),
    executor: pick('executor'),
    platform: pick('platform'),
    architecture: pick('architecture'),
    shell: pick('shell'),
  };
}

/** PUT /api/v4/jobs/:id body (`UpdateJobRequest`), the fields the proxy reads. */
export interface JobUpdateView {
  /** As sent: the runner's states are pending, running, failed and success (docs/runner-protocol.md#job-updates). */
  state?: string;
  failureReason?: string;
  exitCode?: number;
  outputBytesize?: number;
  outputChecksum?: string;
}

export function readJobUpdate(json: unknown): JobUpdateView {
  if (!isObject(json)) return {};
  const out: JobUpdateView = {};
  if (typeof json.state === 'string') out.state = json.state;
  if (typeof json.failure_reason === 'string') out.failureReason = json.failure_reason;
  if (typeof json.exit_code === 'number') out.exitCode = json.exit_code;
  if (isObject(json.output)) {
    if (typeof json.output.bytesize === 'number') out.outputBytesize = json.output.bytesize;
    if (typeof json.output.checksum === 'string') out.outputChecksum = json.output.checksum;
  }
  return out;
}
