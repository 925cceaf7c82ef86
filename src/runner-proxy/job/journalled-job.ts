// The job journal's record of one tracked job: what the job tracker needs to
// finish the job's spans after a proxy restart (ids, start times, endpoints,
// the log follower's snapshot). Written by this proxy, read back by a later
// one, possibly of another version, so reading validates every field and
// rejects a record rather than trusting it.
//
// What it holds is chosen like JobView: metadata only. No token, no variable
// value beyond the allowlisted predefined CI_* ones that become span
// attributes anyway, no repo_url. Configured collectors are named, not copied;
// GitLab's payload endpoints are kept as GitLab sent them (URL and audience).
import type { JsonValue } from './journal.js';
import type { PayloadOtelEndpoint } from '../../telemetry/export/settings.js';
import { isValidSpanId, isValidTraceId } from '../../telemetry/spans.js';
import type { Contract } from '../wire/negotiation.js';
import { CI_VARIABLES, type CiVariable, type JobView, type ReadResult, type RunnerView } from '../wire/payload.js';
import type { JobLogSnapshot } from '../job-log/log-spans.js';

export const JOURNAL_RECORD_VERSION = 1;

/** JobView without the raw contract fields (only negotiation reads them, once). */
export type JournalledJobView = Omit<JobView, 'tracing' | 'jobTelemetry' | 'traceContext' | 'schemaProblems'>;

export interface JournalledJob {
  readonly v: typeof JOURNAL_RECORD_VERSION;
  readonly job: JournalledJobView;
  readonly runner: RunnerView;
  readonly contract: Contract;
  readonly traceId: string;
  readonly jobSpanId: string;
  readonly parentSpanId: string;
  /** Epoch ns as decimal strings (JSON has no bigint). */
  readonly assignedAt: string;
  readonly startedAt?: string;
  readonly canceled: boolean;
  /** Epoch ms after which the job is given up on. */
  readonly deadline: number;
  /** Names of configured endpoints the job exports to. */
  readonly endpoints: readonly string[];
  readonly payloadEndpoints: readonly PayloadOtelEndpoint[];
  /** The sampling decision (always true for jobs GitLab enabled). */
  readonly sampled: boolean;
  readonly log?: JobLogSnapshot;
}

export class JournalRecordError extends Error {
  readonly code = 'JOURNAL_RECORD_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'JournalRecordError';
  }
}

const CONTRACTS: readonly Contract[] = ['tracing', 'job_telemetry', 'variable'];
const CI_VARIABLE_SET = new Set<string>(CI_VARIABLES);
const DECIMAL = /^\d{1,24}$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The record as the journal stores it. Optional fields left undefined vanish
 * when the journal serialises it; no copy is made here (one write per PATCH).
 */
export function journalValue(record: JournalledJob): JsonValue {
  return record as unknown as JsonValue;
}

export function journalView(view: JobView): JournalledJobView {
  const { tracing: _t, jobTelemetry: _j, traceContext: _c, schemaProblems: _s, ...rest } = view;
  return { ...rest, ci: { ...view.ci } };
}

class Reader {
  constructor(private readonly problems: string[]) {}

  str(obj: Record<string, unknown>, key: string, where: string): string | undefined {
    const v = obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.problems.push(`${where}.${key} is not a string`);
    return typeof v === 'string' ? v : undefined;
  }

  num(obj: Record<string, unknown>, key: string, where: string): number | undefined {
    const v = obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.problems.push(`${where}.${key} is not a number`);
    return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
  }

  bool(obj: Record<string, unknown>, key: string, where: string): boolean {
    const v = obj[key];
    if (typeof v !== 'boolean') this.problems.push(`${where}.${key} is not a boolean`);
    return v === true;
  }
}

function readView(raw: unknown, r: Reader, problems: string[]): JournalledJobView | undefined {
  if (!isObject(raw)) {
    problems.push('job is not an object');
    return undefined;
  }
  const jobId = raw.jobId;
  if (typeof jobId !== 'number' || !Number.isSafeInteger(jobId) || jobId <= 0) {
    problems.push('job.jobId is not a positive integer');
    return undefined;
  }
  const ci: Partial<Record<CiVariable, string>> = {};
  if (isObject(raw.ci)) {
    for (const [k, v] of Object.entries(raw.ci)) {
      // Only the allowlist: a record naming anything else was not written by us.
      if (!CI_VARIABLE_SET.has(k) || typeof v !== 'string') problems.push(`job.ci.${k} is not an allowed CI variable`);
      else ci[k as CiVariable] = v;
    }
  } else {
    problems.push('job.ci is not an object');
  }
  const view: JournalledJobView = {
    jobId,
    name: r.str(raw, 'name', 'job'),
    stage: r.str(raw, 'stage', 'job'),
    pipelineId: r.num(raw, 'pipelineId', 'job'),
    projectId: r.num(raw, 'projectId', 'job'),
    projectPath: r.str(raw, 'projectPath', 'job'),
    timeInQueueSeconds: r.num(raw, 'timeInQueueSeconds', 'job'),
    ref: r.str(raw, 'ref', 'job'),
    sha: r.str(raw, 'sha', 'job'),
    refType: r.str(raw, 'refType', 'job'),
    gitDepth: r.num(raw, 'gitDepth', 'job'),
    timeoutSeconds: r.num(raw, 'timeoutSeconds', 'job'),
    traceSections: r.bool(raw, 'traceSections', 'job'),
    ci,
    hasVariablesArray: r.bool(raw, 'hasVariablesArray', 'job'),
    definesTraceparent: r.bool(raw, 'definesTraceparent', 'job'),
  };
  for (const k of Object.keys(view) as (keyof JournalledJobView)[]) if (view[k] === undefined) delete view[k];
  return view;
}

function readRunner(raw: unknown, r: Reader, problems: string[]): RunnerView {
  if (!isObject(raw)) {
    problems.push('runner is not an object');
    return {};
  }
  const out: RunnerView = {};
  for (const k of ['version', 'revision', 'executor', 'platform', 'architecture', 'shell'] as const) {
    const v = r.str(raw, k, 'runner');
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function readPayloadEndpoints(raw: unknown, problems: string[]): PayloadOtelEndpoint[] {
  if (!Array.isArray(raw)) {
    problems.push('payloadEndpoints is not an array');
    return [];
  }
  const out: PayloadOtelEndpoint[] = [];
  raw.forEach((e: unknown, i) => {
    if (!isObject(e) || typeof e.url !== 'string') return problems.push(`payloadEndpoints[${i}] has no url`);
    if (e.auth === undefined) return out.push({ url: e.url });
    const auth = e.auth;
    if (!isObject(auth) || typeof auth.type !== 'string') return problems.push(`payloadEndpoints[${i}].auth is malformed`);
    const gcp = auth.http_bearer_gcp_oidc;
    if (gcp !== undefined && !(isObject(gcp) && typeof gcp.audience === 'string')) {
      return problems.push(`payloadEndpoints[${i}].auth.http_bearer_gcp_oidc is malformed`);
    }
    out.push({
      url: e.url,
      auth: { type: auth.type, ...(gcp ? { http_bearer_gcp_oidc: { audience: (gcp as { audience: string }).audience } } : {}) },
    });
  });
  return out;
}

/**
 * The follower snapshot's outer shape. Its inner fields are the log parser's
 * own; JobLogSpans.restore is the authority on them and the caller catches
 * what it throws.
 */
function readLogSnapshot(raw: unknown, problems: string[]): JobLogSnapshot | undefined {
  if (raw === undefined) return undefined;
  if (!isObject(raw) || raw.v !== 1 || !isObject(raw.log) || !isObject(raw.spans)) {
    problems.push('log is not a version 1 follower snapshot');
    return undefined;
  }
  const log = raw.log;
  const spans = raw.spans;
  if (
    log.v !== 1 ||
    typeof log.offset !== 'number' ||
    !(log.offset >= 0) ||
    typeof log.carry !== 'string' ||
    typeof log.scanFrom !== 'number'
  ) {
    problems.push('log.log is malformed');
  }
  if (spans.v !== 1 || !Array.isArray(spans.sections) || !isObject(spans.attempts) || typeof spans.emitted !== 'number') {
    problems.push('log.spans is malformed');
  }
  const open = [...(Array.isArray(spans.sections) ? spans.sections : []), spans.stage, spans.held].filter((s) => s !== undefined);
  for (const s of open) {
    if (
      !isObject(s) ||
      typeof s.spanId !== 'string' ||
      !isValidSpanId(s.spanId) ||
      typeof s.startNs !== 'string' ||
      !DECIMAL.test(s.startNs)
    ) {
      problems.push('log.spans has a malformed open span');
      break;
    }
  }
  return raw as unknown as JobLogSnapshot;
}

/** Validates a record read back from the journal. */
export function readJournalledJob(raw: unknown): ReadResult<JournalledJob> {
  if (!isObject(raw)) return { ok: false, problem: 'journal record is not an object' };
  if (raw.v !== JOURNAL_RECORD_VERSION)
    return { ok: false, problem: `journal record version ${String(raw.v)} is not ${JOURNAL_RECORD_VERSION}` };
  const problems: string[] = [];
  const r = new Reader(problems);
  const job = readView(raw.job, r, problems);
  const runner = readRunner(raw.runner, r, problems);
  const contract = CONTRACTS.find((c) => c === raw.contract);
  if (!contract) problems.push('contract is not one of tracing, job_telemetry, variable');
  const traceId = raw.traceId;
  if (typeof traceId !== 'string' || !isValidTraceId(traceId)) problems.push('traceId is not a valid trace id');
  const ids = [raw.jobSpanId, raw.parentSpanId];
  if (!ids.every((id) => typeof id === 'string' && isValidSpanId(id))) problems.push('jobSpanId or parentSpanId is not a valid span id');
  const assignedAt = raw.assignedAt;
  if (typeof assignedAt !== 'string' || !DECIMAL.test(assignedAt)) problems.push('assignedAt is not a decimal nanosecond time');
  const startedAt = raw.startedAt;
  if (startedAt !== undefined && (typeof startedAt !== 'string' || !DECIMAL.test(startedAt)))
    problems.push('startedAt is not a decimal nanosecond time');
  const canceled = r.bool(raw, 'canceled', 'record');
  const sampled = r.bool(raw, 'sampled', 'record');
  const deadline = r.num(raw, 'deadline', 'record');
  if (deadline === undefined) problems.push('deadline is missing');
  const endpoints = Array.isArray(raw.endpoints) && raw.endpoints.every((e) => typeof e === 'string') ? raw.endpoints : undefined;
  if (!endpoints) problems.push('endpoints is not a list of names');
  const payloadEndpoints = readPayloadEndpoints(raw.payloadEndpoints, problems);
  const log = readLogSnapshot(raw.log, problems);
  if (problems.length > 0 || !job) return { ok: false, problem: problems.join('; ') };
  return {
    ok: true,
    value: {
      v: JOURNAL_RECORD_VERSION,
      job,
      runner,
      contract: contract!,
      traceId: traceId as string,
      jobSpanId: raw.jobSpanId as string,
      parentSpanId: raw.parentSpanId as string,
      assignedAt: assignedAt as string,
      ...(startedAt !== undefined ? { startedAt: startedAt as string } : {}),
      canceled,
      deadline: deadline!,
      endpoints: endpoints!,
      payloadEndpoints,
      sampled,
      ...(log ? { log } : {}),
    },
  };
}
