// One state machine per job, fed by the observed exchanges (tee.ts):
//   201 job payload → negotiate; allocate the job span id; edit the payload
//   PUT state=running (first update) → the job has started
//   PATCH trace accepted (202) → the job log follower (stage spans)
//   PUT state=success|failed accepted (200) → end the job span and export
// The tracker owns ids and times and hands finished spans to a SpanSink. It
// holds no token and no variable value: only JobView metadata.
import type { Attributes } from '@opentelemetry/api';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { Counter, Gauge } from 'prom-client';
import type { Logger } from '../log.js';
import { CI, RESOURCE } from '../telemetry/attributes.js';
import { endpointFromPayload, type EndpointSettings } from '../telemetry/export/settings.js';
import type { SpanSink } from '../telemetry/export/pipeline.js';
import { newSpanId, nowNanos, traceparent, type SpanRecord } from '../telemetry/spans.js';
import { buildJobSpan, type JobOutcome } from './job-span.js';
import { negotiate, type Contract, type NegotiationOptions } from './negotiation.js';
import { readJobPayload, readJobUpdate, readRunnerInfo, type JobView, type RunnerView } from './payload.js';
import { advertiseJobTelemetry, editJobPayload, type JobVariableEdit } from './payload-edits.js';
import { JobLogSpans } from './stage-spans.js';
import type { ExchangeObserver, JobUpdateExchange, TracePatchExchange } from './tee.js';

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
}

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

  constructor(private readonly options: JobTrackerOptions) {
    this.clock = options.clock ?? nowNanos;
  }

  get activeJobs(): number {
    return this.jobs.size;
  }

  /** Trace context of a job the tracker follows (for tests and the demo). */
  jobContext(jobId: number): { traceId: string; spanId: string } | undefined {
    const s = this.jobs.get(jobId);
    return s && { traceId: s.traceId, spanId: s.jobSpanId };
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
    const state: JobState = {
      view,
      runner,
      contract: decision.contract,
      traceId: decision.traceId,
      jobSpanId: newSpanId(),
      parentSpanId: decision.parentSpanId,
      resource: this.resourceFor(runner),
      endpoints: this.endpointsFor(view.jobId, decision.payloadEndpoints),
      assignedAt: at,
      canceled: false,
      deadline: Date.now() + (view.timeoutSeconds ?? 3600) * 1000 + this.options.abandonAfterMs,
    };
    const stages = this.options.stageSpans;
    if (stages.enabled && view.traceSections) {
      state.follower = new JobLogSpans(
        {
          traceId: state.traceId,
          jobSpanId: state.jobSpanId,
          maxSpans: stages.maxSpansPerJob,
          maxAttributeLength: stages.maxAttributeLength,
        },
        (span) => this.options.sink.submit([span], state.resource, state.endpoints),
      );
    }
    const previous = this.jobs.get(view.jobId);
    if (previous) log('warn', 'job assigned again while still tracked; restarting its telemetry', { job_id: view.jobId });
    this.jobs.set(view.jobId, state);
    this.options.metrics?.jobsActive.set(this.jobs.size);
    log('info', 'job telemetry on', { job_id: view.jobId, contract: decision.contract, trace_id: state.traceId });

    const variables: JobVariableEdit[] = [];
    if (this.options.traceContext.inject && view.hasVariablesArray && !view.definesTraceparent) {
      variables.push({ key: 'TRACEPARENT', value: traceparent(state.traceId, state.jobSpanId) });
      variables.push({ key: 'TRACESTATE', value: '' });
      if (this.options.traceContext.otlpEndpoint) {
        variables.push({ key: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: this.options.traceContext.otlpEndpoint });
      }
    }
    return editJobPayload(text, { removeNativeTracing: decision.removeNativeTracing, variables });
  }

  jobUpdate(exchange: JobUpdateExchange): void {
    const state = this.jobs.get(exchange.jobId);
    if (!state) return;
    this.noteJobStatus(state, exchange.jobStatus);
    state.startedAt ??= exchange.at;
    const update = readJobUpdate(parseJson(exchange.body));
    if (!update.state || !FINAL_STATES.has(update.state)) return;
    // 200 = GitLab accepted the final state; 202 = come back later (the runner
    // repeats the PUT); 403/404 = GitLab has already ended the job.
    if (exchange.status === 200 || exchange.status === 403 || exchange.status === 404) {
      let outcome: JobOutcome;
      if (state.canceled) outcome = { state: 'canceled', failureReason: update.failureReason };
      else if (update.state === 'success') outcome = { state: 'success' };
      else outcome = { state: 'failed', failureReason: update.failureReason, exitCode: update.exitCode };
      this.finish(state, outcome, this.clock());
    }
  }

  tracePatch(exchange: TracePatchExchange): void {
    const state = this.jobs.get(exchange.jobId);
    if (!state) return;
    this.noteJobStatus(state, exchange.jobStatus);
    state.startedAt ??= exchange.at;
    if (exchange.status !== 202 || !state.follower) return;
    const m = CONTENT_RANGE.exec(exchange.contentRange?.trim() ?? '');
    if (!m) return;
    state.follower.accept(Number(m[1]), exchange.body);
  }

  /** Gives up on jobs past their timeout (the runner died, or the job moved to another proxy). */
  sweep(nowMs = Date.now()): void {
    for (const state of [...this.jobs.values()]) {
      if (nowMs >= state.deadline) {
        this.options.log('warn', 'job never reported a final state; closing its spans', { job_id: state.view.jobId });
        this.finish(state, { state: 'abandoned' }, this.clock());
      }
    }
  }

  /** Ends every tracked job now (shutdown without a journal). */
  abandonAll(): void {
    for (const state of [...this.jobs.values()]) this.finish(state, { state: 'abandoned' }, this.clock());
  }

  private noteJobStatus(state: JobState, jobStatus: string | undefined): void {
    if (jobStatus === 'canceling' || jobStatus === 'canceled') state.canceled = true;
  }

  private finish(state: JobState, outcome: JobOutcome, now: bigint): void {
    this.jobs.delete(state.view.jobId);
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
    const end = state.follower?.lastTimestamp !== undefined && state.follower.lastTimestamp > start
      ? state.follower.lastTimestamp
      : now;
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
    this.options.sink.submit([span], state.resource, state.endpoints);
    this.options.metrics?.jobs.inc({ contract: state.contract, result: outcome.state });
    this.options.log('info', 'job finished', { job_id: state.view.jobId, result: outcome.state });
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

  private endpointsFor(jobId: number, payload: Parameters<typeof endpointFromPayload>[0][]): EndpointSettings[] {
    const out = [...this.options.endpoints];
    for (const entry of payload) {
      const made = endpointFromPayload(entry, this.options.payloadEndpointDefaults);
      if (made.ok) out.push(made.endpoint);
      else this.options.log('warn', `payload endpoint ignored: ${made.error.message}`, { job_id: jobId });
    }
    return out;
  }
}

