// The job journal: what the job tracker needs to finish a job's spans after a
// proxy restart (ids, start times, endpoints, the log spans' snapshot), one
// record per job in a framed record file (record-file.ts) under the spool
// directory. Last write per job wins; deleted when the job ends; compacted on
// open and when mostly garbage. This module owns both the file and the record
// format: a record is written by this proxy and read back by a later one,
// possibly of another version, so reading validates every field and rejects a
// record rather than trusting it.
//
// What a record holds is chosen like JobView: metadata only. No token, no
// variable value beyond the allowlisted predefined CI_* ones that become span
// attributes anyway, no repo_url. Configured collectors are named, not copied;
// GitLab's payload endpoints are kept as GitLab sent them (URL and audience).
import { chmodSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { frameRecord, readRecordFile, SyncRecordWriter } from '../../telemetry/export/record-file.js';
import type { PayloadOtelEndpoint } from '../../telemetry/export/settings.js';
import { isValidSpanId, isValidTraceId } from '../../telemetry/spans.js';
import type { Contract } from '../wire/negotiation.js';
import { CI_VARIABLES, type CiVariable, type JobView, type ReadResult, type RunnerView } from '../wire/payload.js';
import type { LogSpansSnapshot } from '../job-log/log-spans.js';
import { isJsonObject as isObject } from '../../json-guards.js';

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
  /** Absent: the job span is a root span. */
  readonly parentSpanId?: string;
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
  readonly log?: LogSpansSnapshot;
}

const CONTRACTS: readonly Contract[] = ['tracing', 'job_telemetry', 'variable'];
const CI_VARIABLE_SET = new Set<string>(CI_VARIABLES);
const DECIMAL = /^\d{1,24}$/;

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
 * The log spans snapshot's outer shape. Its inner fields are the log parser's
 * own; LogSpans.restore is the authority on them and the caller catches
 * what it throws.
 */
function readLogSnapshot(raw: unknown, problems: string[]): LogSpansSnapshot | undefined {
  if (raw === undefined) return undefined;
  if (!isObject(raw) || raw.v !== 1 || !isObject(raw.log) || !isObject(raw.spans)) {
    problems.push('log is not a version 1 log spans snapshot');
    return undefined;
  }
  const log = raw.log;
  const spans = raw.spans;
  if (
    (log.v !== 1 && log.v !== 2) ||
    typeof log.offset !== 'number' ||
    !(log.offset >= 0) ||
    typeof log.carry !== 'string' ||
    (log.v === 1 && typeof log.scanFrom !== 'number')
  ) {
    problems.push('log.log is malformed');
  }
  if (spans.v !== 1 || !Array.isArray(spans.sections) || !isObject(spans.attempts) || typeof spans.emitted !== 'number') {
    problems.push('log.spans is malformed');
  }
  const sections: unknown[] = Array.isArray(spans.sections) ? spans.sections : [];
  const open = [...sections, spans.stage, spans.held].filter((s) => s !== undefined);
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
  return raw as unknown as LogSpansSnapshot;
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
  if (typeof raw.jobSpanId !== 'string' || !isValidSpanId(raw.jobSpanId)) problems.push('jobSpanId is not a valid span id');
  const parentSpanId = raw.parentSpanId;
  if (parentSpanId !== undefined && (typeof parentSpanId !== 'string' || !isValidSpanId(parentSpanId)))
    problems.push('parentSpanId is not a valid span id');
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
      ...(parentSpanId !== undefined ? { parentSpanId: parentSpanId as string } : {}),
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

/**
 * One line of the file: a job's record put, or its deletion. `s` is what the
 * file held, validated by readJournalledJob when loaded (a record of another
 * version stays on disk until the tracker deletes it).
 */
type Entry = { t: 'p'; job: string; s: unknown } | { t: 'x'; job: string };

export interface JournalWarning {
  event: 'journal_records_skipped';
  file: string;
  corrupt: number;
  torn: boolean;
}

export class JobJournal {
  private writer: SyncRecordWriter;
  /** Each job's latest record as stored (unvalidated until loadAll). */
  private readonly live = new Map<string, unknown>();
  private liveBytes = 0;
  private readonly path: string;

  private constructor(dir: string, onWarning: (w: JournalWarning) => void) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, 'jobs.journal');
    const read = readRecordFile(this.path);
    if (read.corrupt > 0 || read.torn)
      onWarning({ event: 'journal_records_skipped', file: this.path, corrupt: read.corrupt, torn: read.torn });
    for (const p of read.payloads) {
      const e = readEntry(p);
      if (e?.t === 'p') this.live.set(e.job, e.s);
      else if (e?.t === 'x') this.live.delete(e.job);
    }
    this.compact();
    this.writer = new SyncRecordWriter(this.path);
    this.writer.bytes = this.fileSize();
  }

  static open(dir: string, onWarning: (w: JournalWarning) => void = () => undefined): JobJournal {
    return new JobJournal(dir, onWarning);
  }

  /** Durable when it returns (written to the file, not fsynced). Optional fields left undefined are not written. */
  put(jobId: string, record: JournalledJob): void {
    this.live.set(jobId, record);
    this.writer.append(Buffer.from(JSON.stringify({ t: 'p', job: jobId, s: record } satisfies Entry)));
    this.maybeCompact();
  }

  delete(jobId: string): void {
    if (!this.live.delete(jobId)) return;
    this.writer.append(Buffer.from(JSON.stringify({ t: 'x', job: jobId } satisfies Entry)));
    this.maybeCompact();
  }

  /** Every job's record, each validated on its own: one unusable record costs only its job. */
  loadAll(): Map<string, ReadResult<JournalledJob>> {
    return new Map([...this.live].map(([job, s]) => [job, readJournalledJob(s)]));
  }

  /** Job ids with a record (usable or not). */
  jobs(): string[] {
    return [...this.live.keys()];
  }

  private closed = false;
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.close();
  }

  private fileSize(): number {
    try {
      return statSync(this.path).size;
    } catch {
      return 0;
    }
  }

  private maybeCompact(): void {
    if (this.writer.bytes < 1024 * 1024 || this.writer.bytes < 4 * this.liveBytes) return;
    this.writer.close();
    this.compact();
    this.writer = new SyncRecordWriter(this.path);
    this.writer.bytes = this.fileSize();
  }

  /** Rewrites the live entries to a new file and renames it over the old one (atomic on POSIX). */
  private compact(): void {
    const records = [...this.live].map(([job, s]) => frameRecord(Buffer.from(JSON.stringify({ t: 'p', job, s } satisfies Entry))));
    const body = Buffer.concat(records);
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, body, { mode: 0o600 });
    // A leftover tmp file keeps its old mode through writeFileSync (docs/security.md#files).
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.path);
    this.liveBytes = body.length;
  }
}

function readEntry(payload: Buffer): Entry | undefined {
  let e: unknown;
  try {
    e = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(e) || typeof e.job !== 'string') return undefined;
  if (e.t === 'p') return { t: 'p', job: e.job, s: e.s };
  if (e.t === 'x') return { t: 'x', job: e.job };
  return undefined;
}
