// The job tracker: the proxy's ExchangeObserver (http/routes.ts). It keeps
// the table of jobs with telemetry and routes each observed exchange to the
// job it belongs to (docs/runner-protocol.md#job-updates):
//   201 job payload → job-assignment.ts negotiates and edits; the job is tracked
//   PUT state=running (first update) → the job has started
//   PATCH trace accepted (202) → the job's log spans (stage spans)
//   PUT state=success|failed accepted (200) → end the job span and export
// The tracker owns ids and times and hands finished spans to the sampling
// hold, which passes them to the SpanSink. It holds no variable value: only
// JobView metadata, and each job's token digest in job-tokens.ts, so that only
// the job's own runner can change its telemetry (docs/security.md#job-tokens).
//
// With a journal, each job's record is rewritten after every observed
// exchange that changed it (journal-writer.ts) and deleted when the job ends,
// so a restarted proxy picks the job up where the old one left off.
import type { Attributes } from '@opentelemetry/api';
import type { Counter, Gauge } from 'prom-client';
import type { Logger } from '../../log.js';
import { CI } from '../../telemetry/attributes.js';
import type { SpansDropped } from '../../telemetry/export/export-metrics.js';
import type { SpanSink } from '../../telemetry/export/pipeline.js';
import type { EndpointSettings, SamplingSettings } from '../../telemetry/export/settings.js';
import { newSpanId, nowNanos, type SpanRecord } from '../../telemetry/spans.js';
import type { NegotiationOptions } from '../wire/negotiation.js';
import { readJobUpdate } from '../wire/payload.js';
import { LogSpans } from '../job-log/log-spans.js';
import type { ArtifactTransferExchange, ExchangeObserver, JobUpdateExchange, TracePatchExchange } from '../http/routes.js';
import type { ArtifactTransfer } from './ci-metrics.js';
import { editJobRequest, parseJson, type TraceContextOptions } from './job-assignment.js';
import { JobDecider, type DecidedJob } from './job-decision.js';
import { configuredByName, jobEndpoints, type PayloadEndpointDefaults } from './job-endpoints.js';
import { JobResources } from './job-resources.js';
import type { JobOutcome } from './job-outcome.js';
import { buildJobSpan, buildQueuedSpan, jobStartAttributes } from './job-span.js';
import type { JobJournal, JournalledJob } from './journal.js';
import { JournalWriter } from './journal-writer.js';
import { JobTokens, presentedToken, tokenDigest } from './job-tokens.js';
import { SamplingHold } from './sampling-hold.js';
import { isExported, journalRecord, type TrackedJob } from './tracked-job.js';

export type { TraceContextOptions };

export interface JobTrackerMetrics {
  jobsActive: Gauge;
  jobs: Counter<'contract' | 'result'>;
  negotiation: Counter<'outcome'>;
  /** GitLab's collectors left to the runner's native span, by reason (docs/runner-protocol.md#job-telemetry). */
  payloadEndpointsLeftToRunner?: Counter<'reason'>;
  /** The export side's `gitlab_otel_spans_dropped_total`: held spans past the hold's bounds count there. */
  spansDropped?: SpansDropped;
  /** Job updates and log uploads for a tracked job that did not present its token: ignored (docs/security.md#job-tokens). */
  unauthenticated?: Counter<'route' | 'reason'>;
}

export interface JobTrackerOptions {
  negotiation: NegotiationOptions;
  sink: SpanSink;
  /** Collectors from the proxy's own configuration. */
  endpoints: readonly EndpointSettings[];
  /** Defaults for endpoints created from payload `otel_endpoints`. */
  payloadEndpointDefaults?: PayloadEndpointDefaults;
  /** service.name and OTEL_RESOURCE_ATTRIBUTES / config resource attributes. */
  resourceAttributes: Attributes;
  traceContext: TraceContextOptions;
  /** Bounds of the stage spans made from each job's log. */
  logSpans: { maxSpansPerJob: number; maxAttributeLength: number };
  /** A job with no final update is given up after its timeout plus this grace. */
  abandonAfterMs: number;
  /** Jobs enabled by the fallback variable are sampled with these; absent: all exported. */
  sampling?: SamplingSettings;
  /** Per-job state for restarts; absent: a restart loses jobs in progress. */
  journal?: JobJournal;
  log: Logger;
  metrics?: JobTrackerMetrics;
  /**
   * CI/CD metrics (ci-metrics.ts). When set, every job whose payload can be
   * read is followed, with telemetry or not, and its finished spans are
   * observed before sampling (docs/metrics.md#every-job).
   */
  ciMetrics?: {
    observe(spans: readonly SpanRecord[]): void;
    artifactTransfer?(transfer: ArtifactTransfer): void;
    /** A job is followed from now on: its start attributes, for the series created at 0 (docs/metrics.md#zero-series). */
    jobStarted?(attributes: Attributes): void;
  };
  /** telemetry.queue_span: a `job_queued` span before each exported job (docs/metrics.md#queue-time). */
  queueSpan?: boolean;
  clock?: () => bigint;
  /** A job is no longer followed (ended or given up): the forwarding thread's gate forgets it. */
  onJobEnded?: (jobId: number, jobSpanId: string) => void;
  /** A resumed job's token was learned from an exchange GitLab accepted (its digest, never the token). */
  onTokenLearned?: (jobId: number, digest: string) => void;
}

/** A followed job as the forwarding thread knows it: ids only. */
export interface FollowedJob {
  readonly jobId: number;
  readonly jobSpanId: string;
  readonly traceId: string;
  readonly sampled: boolean;
  /** false: followed for CI/CD metrics only. */
  readonly exported: boolean;
}

const FINAL_STATES = new Set(['success', 'failed']);
const CONTENT_RANGE = /^(\d+)-(\d+)$/;

export class JobTracker implements ExchangeObserver {
  private readonly jobs = new Map<number, TrackedJob>();
  private readonly tokens = new JobTokens();
  private readonly resources: JobResources;
  private readonly clock: () => bigint;
  private readonly sampling: SamplingHold;
  private readonly journal: JournalWriter;
  private readonly decider: JobDecider;
  /** Set by suspend(): the journal holds the jobs now and nothing more is observed. */
  private suspended = false;

  constructor(private readonly options: JobTrackerOptions) {
    this.clock = options.clock ?? nowNanos;
    this.resources = new JobResources(options.resourceAttributes);
    this.sampling = new SamplingHold(options.sampling, options.sink, options.metrics?.spansDropped);
    this.decider = new JobDecider({
      negotiation: options.negotiation,
      traceContext: options.traceContext,
      ...(options.sampling ? { sampling: options.sampling } : {}),
      followForMetrics: options.ciMetrics !== undefined,
      log: options.log,
      ...(options.metrics ? { metrics: options.metrics } : {}),
    });
    this.journal = new JournalWriter(
      options.journal,
      (id) => {
        const job = this.jobs.get(id);
        // Jobs followed for metrics only are never written down (docs/metrics.md#every-job).
        return job && isExported(job) ? journalRecord(job, this.options.endpoints) : undefined;
      },
      options.log,
    );
  }

  /** Spans held for unsampled jobs still running. */
  get heldSpans(): number {
    return this.sampling.heldSpans;
  }

  get activeJobs(): number {
    return this.jobs.size;
  }

  /**
   * What the tracker keeps per job: followed jobs, their token digests, spans
   * held for unsampled ones. All three are 0 once no job is followed, however
   * the jobs ended (docs/metrics.md#memory).
   */
  get perJobState(): { jobs: number; tokens: number; heldSpans: number } {
    return { jobs: this.jobs.size, tokens: this.tokens.size, heldSpans: this.sampling.heldSpans };
  }

  /** Trace context of a job the tracker follows (for tests and the demo). */
  jobContext(jobId: number): { traceId: string; spanId: string; sampled: boolean } | undefined {
    const s = this.jobs.get(jobId);
    if (!s || !isExported(s)) return undefined;
    return { traceId: s.traceId, spanId: s.jobSpanId, sampled: s.sampled };
  }

  /**
   * Takes up the jobs a previous process journalled, so their later log
   * uploads and final update complete their spans. Call once, before the
   * proxy listens. Returns how many jobs were resumed.
   */
  restore(): number {
    let resumed = 0;
    for (const [key, read] of this.journal.load()) {
      if (!read.ok) {
        this.options.log('warn', `journalled job unusable, its telemetry is lost: ${read.problem}`, {
          code: 'JOURNAL_RECORD_INVALID',
          job: key,
        });
        this.journal.delete(key);
        continue;
      }
      const job = this.resume(read.value);
      if (!job) {
        this.journal.delete(key);
        continue;
      }
      this.jobs.set(job.view.jobId, job);
      this.startMetrics(job);
      resumed++;
      this.options.log('info', 'job telemetry resumed after restart', {
        job_id: job.view.jobId,
        trace_id: job.traceId,
        log_offset: job.logSpans?.offset,
      });
    }
    this.options.metrics?.jobsActive.set(this.jobs.size);
    return resumed;
  }

  /**
   * The payload endpoints of the jobs being followed (after restore(): the
   * journalled ones, rebuilt from their records and the current configuration):
   * the only spools besides the configured endpoints' that may be replayed
   * (docs/security.md#removed-endpoints).
   */
  payloadEndpointSettings(): EndpointSettings[] {
    const configured = new Set(this.options.endpoints.map((e) => e.name));
    return [...this.jobs.values()].flatMap((job) => job.endpoints.filter((e) => !configured.has(e.name)));
  }

  /**
   * Shutdown with a journal: every job in progress is written down as it
   * stands and left open for the next process; nothing more is observed.
   * Held spans of unsampled jobs are memory only and are not kept.
   */
  suspend(): void {
    if (this.suspended) return;
    this.journal.suspend([...this.jobs.values()].filter(isExported).map((j) => j.jobId));
    this.suspended = true;
    if (this.heldSpans > 0)
      this.options.log('info', 'spans held for unsampled jobs are not kept across the restart', { spans: this.heldSpans });
    this.options.log('info', 'jobs in progress journalled for the next start', { jobs: this.jobs.size });
  }

  editJobRequest(body: Buffer): Buffer | undefined {
    return editJobRequest(body);
  }

  editJobPayload(text: string, requestBody: Buffer | undefined, at: bigint): string | undefined {
    // One thread: the decision and the tracking in a row (docs/architecture.md#telemetry-thread).
    const { edited, job } = this.decider.decide(text, requestBody, at);
    if (job) this.track(job);
    return edited;
  }

  /**
   * Starts following a job the decision (job-decision.ts) handed over: the
   * same path whether the decision ran here or on the forwarding thread.
   */
  track(decided: DecidedJob): void {
    const { log, metrics } = this.options;
    if (this.suspended) return;
    const { view } = decided;
    const exported = decided.contract !== 'none';
    const job: TrackedJob = {
      view,
      jobId: view.jobId,
      runner: decided.runner,
      contract: decided.contract,
      traceId: decided.traceId,
      jobSpanId: decided.jobSpanId,
      ...(decided.parentSpanId !== undefined ? { parentSpanId: decided.parentSpanId } : {}),
      resource: this.resources.forRunner(decided.runner),
      endpoints: exported ? this.endpointsFor(view.jobId, this.options.endpoints, decided.payloadEndpoints) : [],
      payloadEndpoints: decided.payloadEndpoints,
      sampled: decided.sampled,
      assignedAt: decided.assignedAt,
      canceled: false,
      deadline: Date.now() + (view.timeoutSeconds ?? 3600) * 1000 + this.options.abandonAfterMs,
    };
    if (view.traceSections) job.logSpans = new LogSpans(this.logSpansContext(job), (span) => this.stageSpan(job, span));
    if (this.jobs.has(view.jobId)) {
      if (exported) log('warn', 'job assigned again while still tracked; restarting its telemetry', { job_id: view.jobId });
      this.sampling.discard(view.jobId);
    }
    this.jobs.set(view.jobId, job);
    if (decided.tokenDigest) this.tokens.learnDigest(view.jobId, decided.tokenDigest);
    else this.tokens.forget(view.jobId);
    metrics?.jobsActive.set(this.jobs.size);
    this.startMetrics(job);
    if (!exported) {
      log('debug', 'job followed for metrics only', { job_id: view.jobId });
      return;
    }
    // The 201 is still on its way to the runner: the journal write waits for the next turn.
    this.journal.later(view.jobId);
    log('info', 'job telemetry on', { job_id: view.jobId, contract: decided.contract, trace_id: job.traceId, sampled: job.sampled });
  }

  /** The jobs followed now, as the forwarding thread's gate needs them (docs/architecture.md#telemetry-thread). */
  followedJobs(): FollowedJob[] {
    return [...this.jobs.values()].map((j) => ({
      jobId: j.jobId,
      jobSpanId: j.jobSpanId,
      traceId: j.traceId,
      sampled: j.sampled,
      exported: isExported(j),
    }));
  }

  jobUpdate(exchange: JobUpdateExchange): void {
    const job = this.tracked(exchange.jobId);
    if (!job) return;
    const body = parseJson(exchange.body);
    const token = presentedToken((body as { token?: unknown } | undefined)?.token, exchange.jobToken);
    if (!this.authenticated(job, token, exchange.status, 'job_update')) return;
    this.noteJobStatus(job, exchange.jobStatus);
    job.startedAt ??= exchange.at;
    const update = readJobUpdate(body);
    if (!update.state || !FINAL_STATES.has(update.state)) {
      this.journal.later(job.jobId);
      return;
    }
    // 200 = GitLab accepted the final state; 202 = come back later (the runner
    // repeats the PUT); 403/404 = GitLab has already ended the job.
    if (exchange.status === 200 || exchange.status === 403 || exchange.status === 404) {
      let outcome: JobOutcome;
      if (job.canceled) outcome = { state: 'canceled', failureReason: update.failureReason };
      else if (update.state === 'success') outcome = { state: 'success' };
      else outcome = { state: 'failed', failureReason: update.failureReason, exitCode: update.exitCode };
      this.finish(job, outcome, this.clock());
    } else {
      this.journal.later(job.jobId);
    }
  }

  observesTracePatch(jobId: number, jobToken: string | undefined): boolean {
    if (!this.tracked(jobId)) return false;
    // 'unknown' (resumed job): GitLab's answer decides, so the body is needed.
    if (this.tokens.check(jobId, jobToken) !== 'mismatch') return true;
    this.options.metrics?.unauthenticated?.inc({ route: 'trace_patch', reason: 'token_mismatch' });
    return false;
  }

  tracePatch(exchange: TracePatchExchange): void {
    const job = this.tracked(exchange.jobId);
    if (!job) return;
    if (!this.authenticated(job, exchange.jobToken, exchange.status, 'trace_patch')) return;
    this.noteJobStatus(job, exchange.jobStatus);
    job.startedAt ??= exchange.at;
    const m = CONTENT_RANGE.exec(exchange.contentRange?.trim() ?? '');
    if (exchange.status === 202 && job.logSpans && m) job.logSpans.accept(Number(m[1]), exchange.body);
    this.journal.later(job.jobId);
  }

  /**
   * An artifact upload or download ended: its bytes go to the CI/CD metrics,
   * with the executor of the followed job it belongs to (docs/metrics.md#artifact-transfers).
   */
  artifactTransfer(exchange: ArtifactTransferExchange): void {
    const ci = this.options.ciMetrics;
    if (!ci?.artifactTransfer) return;
    const { direction, bytes, status, complete } = exchange;
    const executor = this.transferringJob(exchange)?.runner.executor;
    try {
      ci.artifactTransfer({ direction, bytes, complete, ...(status !== undefined ? { status } : {}), ...(executor ? { executor } : {}) });
    } catch (err) {
      this.options.log('warn', 'CI/CD metrics could not record an artifact transfer', { error: (err as Error).message });
    }
  }

  /**
   * Whose transfer it is: an upload names its own job in the path and presents
   * that job's token (not yet known after a restart: GitLab checks it); a
   * download names the dependency, so the presented token (the downloading
   * job's own on current GitLab) says which followed job it is, if any.
   */
  private transferringJob({ direction, jobId, jobToken }: ArtifactTransferExchange): TrackedJob | undefined {
    if (direction === 'upload') return this.tokens.check(jobId, jobToken) !== 'mismatch' ? this.tracked(jobId) : undefined;
    const holder = this.tokens.holderOf(jobToken);
    return holder === undefined ? undefined : this.tracked(holder);
  }

  /** Gives up on jobs past their timeout (the runner died, or the job moved to another proxy). */
  sweep(nowMs = Date.now()): void {
    if (this.suspended) return;
    for (const job of [...this.jobs.values()]) {
      if (nowMs >= job.deadline) {
        this.options.log('warn', 'job never reported a final state; closing its spans', { job_id: job.jobId });
        this.finish(job, { state: 'abandoned' }, this.clock());
      }
    }
  }

  /** Ends every tracked job now (shutdown without a journal). */
  abandonAll(): void {
    if (this.suspended) return;
    for (const job of [...this.jobs.values()]) this.finish(job, { state: 'abandoned' }, this.clock());
  }

  /**
   * Whether this exchange is the job's runner's: it presented the job's token,
   * or (resumed job, token not known yet) GitLab accepted it, which GitLab does
   * only for the job's token. Anything else changes nothing and is counted.
   */
  private authenticated(job: TrackedJob, token: string | undefined, status: number, route: 'job_update' | 'trace_patch'): boolean {
    const check = this.tokens.check(job.jobId, token);
    if (check === 'match') return true;
    if (check === 'unknown' && token && status >= 200 && status < 300) {
      this.tokens.learn(job.jobId, token);
      this.options.onTokenLearned?.(job.jobId, tokenDigest(token));
      this.options.log('info', 'job token re-learned from an exchange GitLab accepted', { job_id: job.jobId, route });
      return true;
    }
    this.options.metrics?.unauthenticated?.inc({ route, reason: check === 'mismatch' ? 'token_mismatch' : 'token_unknown' });
    this.options.log('debug', 'exchange for a tracked job without its token ignored', { job_id: job.jobId, route, status });
    return false;
  }

  private tracked(jobId: number): TrackedJob | undefined {
    return this.suspended ? undefined : this.jobs.get(jobId);
  }

  private logSpansContext(job: Pick<TrackedJob, 'traceId' | 'jobSpanId'>) {
    return {
      traceId: job.traceId,
      jobSpanId: job.jobSpanId,
      maxSpans: this.options.logSpans.maxSpansPerJob,
      maxAttributeLength: this.options.logSpans.maxAttributeLength,
    };
  }

  /** A finished span from the job's log: kept for the metrics if it is a build stage, exported if the job is. */
  private stageSpan(job: TrackedJob, span: SpanRecord): void {
    if (this.options.ciMetrics && span.attributes[CI.stageName] !== undefined) (job.stageSpans ??= []).push(span);
    if (isExported(job)) this.sampling.emit(job, [span]);
  }

  private noteJobStatus(job: TrackedJob, jobStatus: string | undefined): void {
    if (jobStatus === 'canceling' || jobStatus === 'canceled') job.canceled = true;
  }

  private finish(job: TrackedJob, outcome: JobOutcome, now: bigint): void {
    this.jobs.delete(job.jobId);
    this.tokens.forget(job.jobId);
    this.options.onJobEnded?.(job.jobId, job.jobSpanId);
    this.options.metrics?.jobsActive.set(this.jobs.size);
    const logSpans = job.logSpans;
    logSpans?.finish(outcome, now);
    // Log stamps are the runner's own clock for the job's first and last
    // entries; they bound the job better than when the HTTP calls arrived.
    const start = logSpans?.firstTimestamp ?? job.startedAt ?? job.assignedAt;
    const end = logSpans?.lastTimestamp !== undefined && logSpans.lastTimestamp > start ? logSpans.lastTimestamp : now;
    const span = buildJobSpan({
      job: job.view,
      runner: job.runner,
      contract: job.contract,
      traceId: job.traceId,
      spanId: job.jobSpanId,
      parentSpanId: job.parentSpanId,
      startTimeUnixNano: start,
      endTimeUnixNano: end,
      outcome,
      extra: logSpans && {
        [CI.logBytes]: logSpans.offset,
        [CI.logTruncated]: logSpans.outputLimitHit,
        ...(logSpans.droppedSections > 0 ? { [CI.droppedSections]: logSpans.droppedSections } : {}),
      },
    });
    // Before the sampling hold: sampled-out and metrics-only jobs count too (docs/metrics.md#every-job).
    this.observeMetrics(job, span);
    if (!isExported(job)) {
      this.options.metrics?.jobs.inc({ contract: job.contract, result: outcome.state });
      this.options.log('debug', 'job finished', { job_id: job.jobId, result: outcome.state, metrics_only: true });
      return;
    }
    if (this.options.queueSpan) {
      const queued = buildQueuedSpan({
        job: job.view,
        traceId: job.traceId,
        spanId: newSpanId(),
        parentSpanId: job.parentSpanId,
        pickedUpAt: job.assignedAt,
      });
      if (queued) this.sampling.emit(job, [queued]);
    }
    this.sampling.finish(job, outcome, span);
    // After the submit: the spans are in the export queue (and its spool) before the job's record goes.
    this.journal.delete(job.jobId);
    this.options.metrics?.jobs.inc({ contract: job.contract, result: outcome.state });
    this.options.log('info', 'job finished', { job_id: job.jobId, result: outcome.state, sampled: job.sampled });
  }

  /**
   * The job's zero series, before it can fail (docs/metrics.md#zero-series): a scrape between now and its end
   * serves them at 0, so its failure is counted by rate(). A metrics failure never reaches the job.
   */
  private startMetrics(job: TrackedJob): void {
    const ci = this.options.ciMetrics;
    if (!ci?.jobStarted) return;
    try {
      ci.jobStarted(jobStartAttributes(job.view, job.runner, job.contract));
    } catch (err) {
      this.options.log('warn', 'CI/CD metrics could not record a job start', { job_id: job.jobId, error: (err as Error).message });
    }
  }

  /** A metrics failure never reaches the job: it is logged once per job and forgotten. */
  private observeMetrics(job: TrackedJob, jobSpan: SpanRecord): void {
    const ci = this.options.ciMetrics;
    if (!ci) return;
    try {
      ci.observe([...(job.stageSpans ?? []), jobSpan]);
    } catch (err) {
      this.options.log('warn', 'CI/CD metrics could not record a job', { job_id: job.jobId, error: (err as Error).message });
    }
    job.stageSpans = undefined;
  }

  /** Rebuilds a job from its journal record; undefined (logged) if its log state cannot be restored. */
  private resume(r: JournalledJob): TrackedJob | undefined {
    const configured = configuredByName(this.options.endpoints, r.endpoints);
    if (configured.missing) {
      this.options.log('warn', 'a collector this job exported to is no longer configured; its spans go to the rest', {
        job_id: r.job.jobId,
      });
    }
    const job: TrackedJob = {
      view: { ...r.job, schemaProblems: [] },
      jobId: r.job.jobId,
      runner: r.runner,
      contract: r.contract,
      traceId: r.traceId,
      jobSpanId: r.jobSpanId,
      parentSpanId: r.parentSpanId,
      resource: this.resources.forRunner(r.runner),
      endpoints: this.endpointsFor(r.job.jobId, configured.endpoints, r.payloadEndpoints),
      payloadEndpoints: r.payloadEndpoints,
      sampled: r.sampled,
      assignedAt: BigInt(r.assignedAt),
      ...(r.startedAt !== undefined ? { startedAt: BigInt(r.startedAt) } : {}),
      canceled: r.canceled,
      deadline: r.deadline,
    };
    if (r.log) {
      try {
        job.logSpans = LogSpans.restore(this.logSpansContext(job), r.log, (span) => this.stageSpan(job, span));
      } catch (err) {
        this.options.log('warn', `journalled log state unusable, its telemetry is lost: ${(err as Error).message}`, {
          code: 'JOURNAL_RECORD_INVALID',
          job_id: r.job.jobId,
        });
        return undefined;
      }
    }
    return job;
  }

  private endpointsFor(
    jobId: number,
    configured: readonly EndpointSettings[],
    payload: TrackedJob['payloadEndpoints'],
  ): EndpointSettings[] {
    const { endpoints, ignored } = jobEndpoints(configured, payload, this.options.payloadEndpointDefaults);
    for (const why of ignored) this.options.log('warn', `payload endpoint ignored: ${why}`, { job_id: jobId });
    return endpoints;
  }
}
