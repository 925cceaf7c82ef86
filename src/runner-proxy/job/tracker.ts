// One state machine per job, fed by the observed exchanges (tee.ts):
//   201 job payload → negotiate; allocate the job span id; edit the payload
//   PUT state=running (first update) → the job has started
//   PATCH trace accepted (202) → the job log follower (stage spans)
//   PUT state=success|failed accepted (200) → end the job span and export
// The tracker owns ids and times and hands finished spans to a SpanSink. It
// holds no token and no variable value: only JobView metadata.
//
// With a journal, each job's state is written after every observed exchange
// that changed it (one record per job, overwritten; deleted when the job
// ends), so a restarted proxy picks the job up where the old one left off.
// Jobs enabled by the fallback variable are sampled by trace id; an unsampled
// job's spans are held until its outcome is known, and exported only if it
// failed or was canceled.
import type { Attributes } from '@opentelemetry/api';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { Counter, Gauge } from 'prom-client';
import type { Logger } from '../../log.js';
import { CI, RESOURCE } from '../../telemetry/attributes.js';
import type { JsonValue } from './journal.js';
import {
  endpointFromPayload,
  type EndpointSettings,
  type PayloadOtelEndpoint,
  type SamplingSettings,
} from '../../telemetry/export/settings.js';
import type { SpanSink } from '../../telemetry/export/pipeline.js';
import { TraceSampling, UnsampledJobHold } from '../../telemetry/sampling.js';
import { newSpanId, nowNanos, traceparent, type SpanRecord } from '../../telemetry/spans.js';
import { buildJobSpan, type JobOutcome } from './job-span.js';
import { journalValue, journalView, readJournalledJob, type JournalledJob } from './journalled-job.js';
import { negotiate, type Contract, type NegotiationOptions } from '../wire/negotiation.js';
import { readJobPayload, readJobUpdate, readRunnerInfo, type JobView, type RunnerView } from '../wire/payload.js';
import { advertiseJobTelemetry, editJobPayload, type JobVariableEdit } from '../wire/payload-edits.js';
import { JobLogSpans } from '../job-log/log-spans.js';
import type { ExchangeObserver, JobUpdateExchange, TracePatchExchange } from '../http/routes.js';

export interface TraceContextOptions {
  /** Put TRACEPARENT / TRACESTATE into the job's variables. */
  inject: boolean;
  /** Hand this OTLP endpoint to the job as OTEL_EXPORTER_OTLP_ENDPOINT. */
  otlpEndpoint?: string;
}

export interface JobTrackerMetrics {
  jobsActive: Gauge;
  jobs: Counter<'contract' | 'result'>;
  negotiation: Counter<'outcome'>;
  /** The export side's `gitlab_otel_spans_dropped_total`: held spans past the hold's bounds count there. */
  spansDropped?: Counter<'endpoint' | 'reason'>;
}

/** Where per-job state survives a restart (the pipeline's JobJournal). */
export interface JobStateJournal {
  put(jobId: string, snapshot: JsonValue): void;
  delete(jobId: string): void;
  loadAll(): Map<string, JsonValue>;
}

/** Drop reason for spans of an unsampled job that did not fit the hold. */
export const HOLD_FULL = 'sampling_hold_full';

export interface JobTrackerOptions {
  negotiation: NegotiationOptions;
  sink: SpanSink;
  /** Collectors from the proxy's own configuration. */
  endpoints: readonly EndpointSettings[];
  /** Defaults for endpoints created from payload `otel_endpoints`. */
  payloadEndpointDefaults?: Parameters<typeof endpointFromPayload>[1];
  /** service.name and OTEL_RESOURCE_ATTRIBUTES / config resource attributes. */
  resourceAttributes: Attributes;
  traceContext: TraceContextOptions;
  /** Stage spans from the job log; off: only job_execution. */
  stageSpans: { enabled: boolean; maxSpansPerJob: number; maxAttributeLength: number };
  /** A job with no final update is given up after its timeout plus this grace. */
  abandonAfterMs: number;
  /** Jobs enabled by the fallback variable are sampled with these; absent: all exported. */
  sampling?: SamplingSettings;
  /** Per-job state for restarts; absent: a restart loses jobs in progress. */
  journal?: JobStateJournal;
  log: Logger;
  metrics?: JobTrackerMetrics;
  clock?: () => bigint;
}

interface JobState {
  view: JobView;
  runner: RunnerView;
  contract: Contract;
  traceId: string;
  jobSpanId: string;
  parentSpanId: string;
  resource: Resource;
  endpoints: readonly EndpointSettings[];
  /** As GitLab sent them: journalled instead of the settings made from them. */
  payloadEndpoints: readonly PayloadOtelEndpoint[];
  /** false only for a fallback-enabled job the sampler dropped: its spans are held. */
  sampled: boolean;
  /** When the 201 went to the runner. */
  assignedAt: bigint;
  /** The runner's first job update (its ack): the job has started. */
  startedAt?: bigint;
  canceled: boolean;
  follower?: JobLogSpans;
  deadline: number;
}

const FINAL_STATES = new Set(['success', 'failed']);
const CONTENT_RANGE = /^(\d+)-(\d+)$/;

function parseJson(buf: Buffer | string): unknown {
  try {
    return JSON.parse(typeof buf === 'string' ? buf : buf.toString('utf8'));
  } catch {
    return undefined;
  }
}

export class JobTracker implements ExchangeObserver {
  private readonly jobs = new Map<number, JobState>();
  private readonly resources = new Map<string, Resource>();
  private readonly clock: () => bigint;
  private readonly sampling?: TraceSampling;
  private readonly hold?: UnsampledJobHold;
  /** Jobs whose journal record is stale; written together on the next turn of the event loop. */
  private readonly dirty = new Set<number>();
  private journalScheduled = false;
  private journalFailing = false;
  /** Set by suspend(): the journal holds the jobs now and nothing more is observed. */
  private suspended = false;

  constructor(private readonly options: JobTrackerOptions) {
    this.clock = options.clock ?? nowNanos;
    if (options.sampling) {
      this.sampling = new TraceSampling(options.sampling);
      this.hold = new UnsampledJobHold(options.sampling);
    }
  }

  /** Spans held for unsampled jobs still running. */
  get heldSpans(): number {
    return this.hold?.heldSpans ?? 0;
  }

  get activeJobs(): number {
    return this.jobs.size;
  }

  /** Trace context of a job the tracker follows (for tests and the demo). */
  jobContext(jobId: number): { traceId: string; spanId: string; sampled: boolean } | undefined {
    const s = this.jobs.get(jobId);
    return s && { traceId: s.traceId, spanId: s.jobSpanId, sampled: s.sampled };
  }

  /**
   * Takes up the jobs a previous process journalled, so their later log
   * uploads and final update complete their spans. Call once, before the
   * proxy listens. Returns how many jobs were resumed.
   */
  restore(): number {
    const journal = this.options.journal;
    if (!journal) return 0;
    let entries: Map<string, JsonValue>;
    try {
      entries = journal.loadAll();
    } catch (err) {
      this.journalError('load', err);
      return 0;
    }
    let resumed = 0;
    for (const [key, raw] of entries) {
      const read = readJournalledJob(raw);
      if (!read.ok) {
        this.options.log('warn', `journalled job unusable, its telemetry is lost: ${read.problem}`, {
          code: 'JOURNAL_RECORD_INVALID',
          job: key,
        });
        this.journalDelete(key);
        continue;
      }
      const state = this.resume(read.value);
      if (!state) {
        this.journalDelete(key);
        continue;
      }
      this.jobs.set(state.view.jobId, state);
      resumed++;
      this.options.log('info', 'job telemetry resumed after restart', {
        job_id: state.view.jobId,
        trace_id: state.traceId,
        log_offset: state.follower?.offset,
      });
    }
    this.options.metrics?.jobsActive.set(this.jobs.size);
    return resumed;
  }

  /**
   * Shutdown with a journal: every job in progress is written down as it
   * stands and left open for the next process; nothing more is observed.
   * Held spans of unsampled jobs are memory only and are not kept.
   */
  suspend(): void {
    if (this.suspended) return;
    for (const id of this.jobs.keys()) this.dirty.add(id);
    this.writeJournal();
    this.suspended = true;
    if (this.heldSpans > 0)
      this.options.log('info', 'spans held for unsampled jobs are not kept across the restart', { spans: this.heldSpans });
    this.options.log('info', 'jobs in progress journalled for the next start', { jobs: this.jobs.size });
  }

  editJobRequest(body: Buffer): Buffer | undefined {
    const edited = advertiseJobTelemetry(body.toString('utf8'));
    return edited === undefined ? undefined : Buffer.from(edited, 'utf8');
  }

  editJobPayload(text: string, requestBody: Buffer | undefined, at: bigint): string | undefined {
    const { log } = this.options;
    const json = parseJson(text);
    if (json === undefined) {
      log('warn', 'job payload is not valid JSON; forwarded untouched, no telemetry', { bytes: text.length });
      this.options.metrics?.negotiation.inc({ outcome: 'unreadable' });
      return undefined;
    }
    const read = readJobPayload(json);
    if (!read.ok) {
      log('warn', `job payload unusable for telemetry: ${read.problem}; forwarded untouched`);
      this.options.metrics?.negotiation.inc({ outcome: 'unreadable' });
      return undefined;
    }
    const view = read.value;
    const decision = negotiate(view, this.options.negotiation);
    if (!decision.enabled) {
      if (decision.warning) {
        log('warn', `telemetry off for this job: ${decision.warning}`, { job_id: view.jobId });
        this.options.metrics?.negotiation.inc({ outcome: 'invalid' });
      } else {
        this.options.metrics?.negotiation.inc({ outcome: 'none' });
      }
      return undefined;
    }
    this.options.metrics?.negotiation.inc({ outcome: decision.contract });
    for (const w of decision.warnings) log('warn', w, { job_id: view.jobId });
    if (view.schemaProblems.length > 0) {
      log('warn', `job payload fields of unexpected type: ${view.schemaProblems.join('; ')}`, { job_id: view.jobId });
    }

    const runner = readRunnerInfo(requestBody ? parseJson(requestBody) : undefined);
    // GitLab samples the jobs it enables (features.tracing present = sampled);
    // only our own fallback is sampled here, by trace id alone: the pipeline's
    // root span is derived, not observed, so it carries no sampled flag to inherit.
    const sampled = decision.contract !== 'variable' || !this.sampling || this.sampling.isSampled({ traceId: decision.traceId });
    const state: JobState = {
      view,
      runner,
      contract: decision.contract,
      traceId: decision.traceId,
      jobSpanId: newSpanId(),
      parentSpanId: decision.parentSpanId,
      resource: this.resourceFor(runner),
      endpoints: this.endpointsFor(view.jobId, this.options.endpoints, decision.payloadEndpoints),
      payloadEndpoints: decision.payloadEndpoints,
      sampled,
      assignedAt: at,
      canceled: false,
      deadline: Date.now() + (view.timeoutSeconds ?? 3600) * 1000 + this.options.abandonAfterMs,
    };
    const stages = this.options.stageSpans;
    if (stages.enabled && view.traceSections) {
      state.follower = new JobLogSpans(this.followerContext(state), (span) => this.emit(state, [span]));
    }
    const previous = this.jobs.get(view.jobId);
    if (previous) {
      log('warn', 'job assigned again while still tracked; restarting its telemetry', { job_id: view.jobId });
      this.hold?.release(String(view.jobId), false);
    }
    this.jobs.set(view.jobId, state);
    this.options.metrics?.jobsActive.set(this.jobs.size);
    // The 201 is still on its way to the runner: the journal write waits for the next turn.
    this.journalLater(state);
    log('info', 'job telemetry on', { job_id: view.jobId, contract: decision.contract, trace_id: state.traceId, sampled });

    const variables: JobVariableEdit[] = [];
    if (this.options.traceContext.inject && view.hasVariablesArray && !view.definesTraceparent) {
      // An unsampled pipeline's tools should not export either (ParentBased samplers read this flag).
      variables.push({ key: 'TRACEPARENT', value: traceparent(state.traceId, state.jobSpanId, state.sampled) });
      variables.push({ key: 'TRACESTATE', value: '' });
      if (this.options.traceContext.otlpEndpoint) {
        variables.push({ key: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: this.options.traceContext.otlpEndpoint });
      }
    }
    return editJobPayload(text, { removeNativeTracing: decision.removeNativeTracing, variables });
  }

  jobUpdate(exchange: JobUpdateExchange): void {
    const state = this.tracked(exchange.jobId);
    if (!state) return;
    this.noteJobStatus(state, exchange.jobStatus);
    state.startedAt ??= exchange.at;
    const update = readJobUpdate(parseJson(exchange.body));
    if (!update.state || !FINAL_STATES.has(update.state)) {
      this.journalLater(state);
      return;
    }
    // 200 = GitLab accepted the final state; 202 = come back later (the runner
    // repeats the PUT); 403/404 = GitLab has already ended the job.
    if (exchange.status === 200 || exchange.status === 403 || exchange.status === 404) {
      let outcome: JobOutcome;
      if (state.canceled) outcome = { state: 'canceled', failureReason: update.failureReason };
      else if (update.state === 'success') outcome = { state: 'success' };
      else outcome = { state: 'failed', failureReason: update.failureReason, exitCode: update.exitCode };
      this.finish(state, outcome, this.clock());
    } else {
      this.journalLater(state);
    }
  }

  tracePatch(exchange: TracePatchExchange): void {
    const state = this.tracked(exchange.jobId);
    if (!state) return;
    this.noteJobStatus(state, exchange.jobStatus);
    state.startedAt ??= exchange.at;
    const m = CONTENT_RANGE.exec(exchange.contentRange?.trim() ?? '');
    if (exchange.status === 202 && state.follower && m) state.follower.accept(Number(m[1]), exchange.body);
    this.journalLater(state);
  }

  /** Gives up on jobs past their timeout (the runner died, or the job moved to another proxy). */
  sweep(nowMs = Date.now()): void {
    if (this.suspended) return;
    for (const state of [...this.jobs.values()]) {
      if (nowMs >= state.deadline) {
        this.options.log('warn', 'job never reported a final state; closing its spans', { job_id: state.view.jobId });
        this.finish(state, { state: 'abandoned' }, this.clock());
      }
    }
  }

  /** Ends every tracked job now (shutdown without a journal). */
  abandonAll(): void {
    if (this.suspended) return;
    for (const state of [...this.jobs.values()]) this.finish(state, { state: 'abandoned' }, this.clock());
  }

  private tracked(jobId: number): JobState | undefined {
    return this.suspended ? undefined : this.jobs.get(jobId);
  }

  private followerContext(state: JobState) {
    return {
      traceId: state.traceId,
      jobSpanId: state.jobSpanId,
      maxSpans: this.options.stageSpans.maxSpansPerJob,
      maxAttributeLength: this.options.stageSpans.maxAttributeLength,
    };
  }

  /** Spans of a sampled job go to the sink; an unsampled job's are held until it ends. */
  private emit(state: JobState, spans: SpanRecord[]): void {
    if (state.sampled || !this.hold) {
      this.options.sink.submit(spans, state.resource, state.endpoints);
      return;
    }
    const { overflow } = this.hold.hold(String(state.view.jobId), spans);
    if (overflow > 0) {
      for (const e of state.endpoints) this.options.metrics?.spansDropped?.inc({ endpoint: e.name, reason: HOLD_FULL }, overflow);
    }
  }

  private noteJobStatus(state: JobState, jobStatus: string | undefined): void {
    if (jobStatus === 'canceling' || jobStatus === 'canceled') state.canceled = true;
  }

  private finish(state: JobState, outcome: JobOutcome, now: bigint): void {
    this.jobs.delete(state.view.jobId);
    this.dirty.delete(state.view.jobId);
    this.options.metrics?.jobsActive.set(this.jobs.size);
    const follower = state.follower;
    follower?.finish({
      status: outcome.state === 'success' ? 'success' : outcome.state === 'canceled' ? 'canceled' : 'failed',
      failureReason: outcome.state === 'abandoned' ? 'abandoned' : outcome.state === 'success' ? undefined : outcome.failureReason,
      endTimeUnixNano: now,
    });
    // Log stamps are the runner's own clock for the job's first and last
    // entries; they bound the job better than when the HTTP calls arrived.
    const start = state.follower?.firstTimestamp ?? state.startedAt ?? state.assignedAt;
    const end = state.follower?.lastTimestamp !== undefined && state.follower.lastTimestamp > start ? state.follower.lastTimestamp : now;
    const span = buildJobSpan({
      job: state.view,
      runner: state.runner,
      contract: state.contract,
      traceId: state.traceId,
      spanId: state.jobSpanId,
      parentSpanId: state.parentSpanId,
      startTimeUnixNano: start,
      endTimeUnixNano: end,
      outcome,
      extra: follower && {
        [CI.logBytes]: follower.offset,
        [CI.logTruncated]: follower.outputLimitHit,
        ...(follower.droppedSections > 0 ? { [CI.droppedSections]: follower.droppedSections } : {}),
      },
    });
    if (state.sampled || !this.hold) {
      this.options.sink.submit([span], state.resource, state.endpoints);
    } else {
      // Failed and canceled jobs are always kept, whatever the sampler said.
      const keep = outcome.state === 'failed' || outcome.state === 'canceled';
      const held = this.hold.release(String(state.view.jobId), keep);
      if (keep) this.options.sink.submit([...held, span], state.resource, state.endpoints);
    }
    // After the submit: the spans are in the export queue (and its spool) before the job's record goes.
    this.journalDelete(String(state.view.jobId));
    this.options.metrics?.jobs.inc({ contract: state.contract, result: outcome.state });
    this.options.log('info', 'job finished', { job_id: state.view.jobId, result: outcome.state, sampled: state.sampled });
  }

  private record(state: JobState): JournalledJob {
    const configured = new Set(this.options.endpoints.map((e) => e.name));
    return {
      v: 1,
      job: journalView(state.view),
      runner: state.runner,
      contract: state.contract,
      traceId: state.traceId,
      jobSpanId: state.jobSpanId,
      parentSpanId: state.parentSpanId,
      assignedAt: state.assignedAt.toString(),
      ...(state.startedAt !== undefined ? { startedAt: state.startedAt.toString() } : {}),
      canceled: state.canceled,
      deadline: state.deadline,
      endpoints: state.endpoints.filter((e) => configured.has(e.name)).map((e) => e.name),
      payloadEndpoints: state.payloadEndpoints,
      sampled: state.sampled,
      ...(state.follower ? { log: state.follower.snapshot() } : {}),
    };
  }

  /** Rebuilds a job's state from its journal record; undefined (logged) if its log state cannot be restored. */
  private resume(r: JournalledJob): JobState | undefined {
    const names = new Set(r.endpoints);
    const configured = this.options.endpoints.filter((e) => names.has(e.name));
    if (configured.length < names.size) {
      this.options.log('warn', 'a collector this job exported to is no longer configured; its spans go to the rest', {
        job_id: r.job.jobId,
      });
    }
    const view = { ...r.job, schemaProblems: [] };
    const state: JobState = {
      view,
      runner: r.runner,
      contract: r.contract,
      traceId: r.traceId,
      jobSpanId: r.jobSpanId,
      parentSpanId: r.parentSpanId,
      resource: this.resourceFor(r.runner),
      endpoints: this.endpointsFor(r.job.jobId, configured, r.payloadEndpoints),
      payloadEndpoints: r.payloadEndpoints,
      sampled: r.sampled,
      assignedAt: BigInt(r.assignedAt),
      ...(r.startedAt !== undefined ? { startedAt: BigInt(r.startedAt) } : {}),
      canceled: r.canceled,
      deadline: r.deadline,
    };
    if (r.log && this.options.stageSpans.enabled) {
      try {
        state.follower = JobLogSpans.restore(this.followerContext(state), r.log, (span) => this.emit(state, [span]));
      } catch (err) {
        this.options.log('warn', `journalled log state unusable, its telemetry is lost: ${(err as Error).message}`, {
          code: 'JOURNAL_RECORD_INVALID',
          job_id: r.job.jobId,
        });
        return undefined;
      }
    }
    return state;
  }

  private journalLater(state: JobState): void {
    if (!this.options.journal || this.suspended) return;
    this.dirty.add(state.view.jobId);
    if (this.journalScheduled) return;
    this.journalScheduled = true;
    setImmediate(() => {
      this.journalScheduled = false;
      this.writeJournal();
    });
  }

  private writeJournal(): void {
    const journal = this.options.journal;
    if (!journal || this.suspended) return;
    for (const id of this.dirty) {
      const state = this.jobs.get(id);
      if (!state) continue;
      try {
        journal.put(String(id), journalValue(this.record(state)));
        this.journalFailing = false;
      } catch (err) {
        this.journalError('write', err);
      }
    }
    this.dirty.clear();
  }

  private journalDelete(key: string): void {
    if (!this.options.journal || this.suspended) return;
    try {
      this.options.journal.delete(key);
    } catch (err) {
      this.journalError('write', err);
    }
  }

  /** A full or read-only disk costs the restart guarantee, never the job: logged once per failure streak. */
  private journalError(op: 'load' | 'write', err: unknown): void {
    if (this.journalFailing) return;
    this.journalFailing = true;
    this.options.log('warn', `job journal ${op} failed; jobs in progress may not survive a restart`, {
      code: 'JOURNAL_UNAVAILABLE',
      errno: (err as NodeJS.ErrnoException).code ?? 'error',
    });
  }

  private resourceFor(runner: RunnerView): Resource {
    const key = JSON.stringify([runner.version, runner.executor, runner.platform, runner.architecture]);
    let resource = this.resources.get(key);
    if (!resource) {
      const attrs: Attributes = { ...this.options.resourceAttributes };
      if (runner.version) attrs[RESOURCE.runnerVersion] = runner.version;
      if (runner.executor) attrs[RESOURCE.runnerExecutor] = runner.executor;
      if (runner.platform) attrs[RESOURCE.runnerPlatform] = runner.platform;
      if (runner.architecture) attrs[RESOURCE.runnerArchitecture] = runner.architecture;
      resource = resourceFromAttributes(attrs);
      if (this.resources.size > 64) this.resources.clear();
      this.resources.set(key, resource);
    }
    return resource;
  }

  private endpointsFor(
    jobId: number,
    configured: readonly EndpointSettings[],
    payload: readonly PayloadOtelEndpoint[],
  ): EndpointSettings[] {
    const out = [...configured];
    for (const entry of payload) {
      const made = endpointFromPayload(entry, this.options.payloadEndpointDefaults);
      if (made.ok) out.push(made.endpoint);
      else this.options.log('warn', `payload endpoint ignored: ${made.error.message}`, { job_id: jobId });
    }
    return out;
  }
}
