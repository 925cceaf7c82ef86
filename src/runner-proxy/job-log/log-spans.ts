// Log events → stage and section spans.
//
// Built-in stages (the runner's markers, stream 00) become children of
// job_execution. A CI Steps job (FF_CONCRETE) runs as one runner stage,
// `concrete`, inside which step-runner writes the stages itself, on stream 01
// (docs/job-log.md#ci-steps-jobs): those are stages too, children of
// job_execution like the others, and `concrete` is exported as the stage
// around them once the job's outcome is known; collapsible sections printed by scripts (and the runner's
// section_script_step_N) nest under the innermost open section or stage. A
// span is emitted as soon as its end marker is read, with one exception: the
// status of a stage that can fail the job (prepare, sources, cache restore,
// artifact download, step_*) is only known from what follows it, so such a
// stage is held until the next stage says how it went (a `*_on_failure` stage
// or a retry: failed; a later prepare/script stage or the success-path
// archive/upload: succeeded), or until the job's final update.
//
// Pure: no I/O, no clock; span ids from newSpanId().
import { SpanKind, SpanStatusCode, type AttributeValue, type Attributes } from '@opentelemetry/api';
import { CI } from '../../telemetry/attributes.js';
import { newSpanId, type SpanRecord } from '../../telemetry/spans.js';
import { JobLog, type JobLogState, type LogLine, type OutputLimitNotice, type SectionMarker } from './job-log.js';
import { ENRICHED_STAGES, StageEnrichment, readsStream } from './stage-enrichment.js';
import { failureReasonOf, type JobOutcome } from '../job/job-outcome.js';

export interface LogSpansContext {
  readonly traceId: string;
  /** The job_execution span: parent of every stage span. */
  readonly jobSpanId: string;
  /** Most spans exported per job; user sections past it are counted, not exported. */
  readonly maxSpans: number;
  /** String attribute values are cut to this many characters. */
  readonly maxAttributeLength: number;
}

/**
 * Built-in stages still exported once user sections have used up `maxSpans`
 * (a job has about a dozen; retries add a few). Past it even stages are dropped,
 * which only a log full of forged markers reaches.
 */
export const STAGE_ALLOWANCE = 64;

/** Deepest nesting of user sections tracked; deeper starts are dropped. */
export const MAX_OPEN_SECTIONS = 64;

export type StageStatus = 'success' | 'failed' | 'canceled';

const RUNNER_STAGES: ReadonlySet<string> = new Set([
  'resolve_secrets',
  'prepare_executor',
  'prepare_script',
  'get_sources',
  'clear_worktree',
  'restore_cache',
  'download_artifacts',
  'after_script',
  'archive_cache',
  'archive_cache_on_failure',
  'upload_artifacts_on_success',
  'upload_artifacts_on_failure',
  'cleanup_file_variables',
  // FF_CONCRETE: the whole job as one step-runner step (docs/job-log.md#ci-steps-jobs).
  'concrete',
]);

const STEP_STAGE = /^step_[a-z0-9_]+$/;

export function isBuiltInStage(name: string): boolean {
  return RUNNER_STAGES.has(name) || STEP_STAGE.test(name);
}

/** Stages whose failure fails the job (`common/build.go` executeScript / executePrepareScripts). */
function canFailJob(name: string): boolean {
  return (
    name === 'resolve_secrets' ||
    name === 'prepare_executor' ||
    name === 'prepare_script' ||
    name === 'get_sources' ||
    name === 'restore_cache' ||
    name === 'download_artifacts' ||
    STEP_STAGE.test(name)
  );
}

/** Stages that run whether or not the job failed: they say nothing about the held stage. */
function isNeutral(name: string): boolean {
  return name === 'after_script' || name === 'cleanup_file_variables';
}

function isUserScriptStage(name: string): boolean {
  return STEP_STAGE.test(name) || name === 'after_script';
}

interface OpenSpan {
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: 'stage' | 'section';
  startNs: bigint;
  attempt: number;
  unclosed?: boolean;
  /**
   * A step-runner stage's end marker was read without a stamp: its seconds
   * are its start's (docs/job-log.md#ci-steps-jobs), so it ends at the next marker.
   */
  endPending?: boolean;
}

/** The `concrete` stage: open while step-runner runs the job, exported at the job's end. */
interface OuterStage extends OpenSpan {
  endNs?: bigint;
}

interface HeldStage extends OpenSpan {
  endNs: bigint;
  attributes: Attributes;
}

/** JSON-serialisable state of the span side (bigints as strings). */
export interface StageSpansState {
  readonly v: 1;
  readonly stage?: SerialSpan;
  readonly enrichment?: string;
  readonly sections: SerialSpan[];
  readonly held?: SerialSpan & { endNs: string; attributes: Attributes };
  readonly outer?: SerialSpan & { endNs?: string };
  readonly attempts: Record<string, number>;
  readonly emitted: number;
  readonly dropped: number;
  readonly outputLimitHit: boolean;
}

type SerialSpan = Omit<OpenSpan, 'startNs'> & { startNs: string };

export interface LogSpansSnapshot {
  readonly v: 1;
  readonly log: JobLogState;
  readonly spans: StageSpansState;
}

function serial(s: OpenSpan): SerialSpan {
  return { ...s, startNs: s.startNs.toString() };
}

function unserial(s: SerialSpan): OpenSpan {
  return { ...s, startNs: BigInt(s.startNs) };
}

/** The per-job facade the proxy's job tracker uses: PATCH bytes in, spans out. */
export class LogSpans {
  private readonly log: JobLog;
  private stage: OpenSpan | undefined;
  private enrichment: StageEnrichment | undefined;
  private sections: OpenSpan[] = [];
  private held: HeldStage | undefined;
  private outer: OuterStage | undefined;
  private attempts: Record<string, number> = {};
  private emitted = 0;
  private dropped = 0;
  private limitHit = false;
  private finished = false;

  constructor(
    private readonly ctx: LogSpansContext,
    private readonly emit: (span: SpanRecord) => void,
    snapshot?: LogSpansSnapshot,
  ) {
    const sink = {
      marker: (m: SectionMarker) => this.onMarker(m),
      line: (l: LogLine) => this.onLine(l),
      outputLimit: (n: OutputLimitNotice) => this.onOutputLimit(n),
    };
    this.log = new JobLog(sink, snapshot?.log);
    if (snapshot) this.restoreSpans(snapshot.spans);
    this.updateCapture();
  }

  static restore(ctx: LogSpansContext, snapshot: LogSpansSnapshot, emit: (span: SpanRecord) => void): LogSpans {
    return new LogSpans(ctx, emit, snapshot);
  }

  /**
   * Bytes of one PATCH the upstream accepted (202); `start` from its Content-Range.
   * The body may be the chunks it arrived in: they are parsed in place, never joined.
   */
  accept(start: number, body: Buffer | readonly Buffer[]): void {
    if (this.finished) return;
    this.log.accept(start, body);
  }

  /** The job's final update: closes what is open and settles the stage the job failed in. */
  finish(outcome: JobOutcome, endTimeUnixNano: bigint): void {
    if (this.finished) return;
    this.log.end();
    this.finished = true;
    const end = endTimeUnixNano;
    // An abandoned job is closed as failed, with `abandoned` as the reason.
    const status = outcome.state === 'abandoned' ? 'failed' : outcome.state;
    const failureReason = failureReasonOf(outcome);
    // The stage the job ended in: the latest one that could fail it (or, on cancel, the latest one).
    const candidates = [this.held, this.stage].filter((s): s is OpenSpan => s !== undefined);
    const last = candidates.reduce<OpenSpan | undefined>((a, s) => (!a || s.startNs >= a.startNs ? s : a), undefined);
    const culprit =
      status === 'failed'
        ? candidates
            .filter((s) => canFailJob(s.name))
            .reduce<OpenSpan | undefined>((a, s) => (!a || s.startNs >= a.startNs ? s : a), undefined)
        : status === 'canceled'
          ? last
          : undefined;
    const statusOf = (s: OpenSpan): StageStatus => (s === culprit ? (status === 'canceled' ? 'canceled' : 'failed') : 'success');
    this.closeSections(0, end, true);
    if (this.stage?.endPending) this.endStage(this.outer?.endNs ?? end, false);
    if (this.held) {
      const h = this.held;
      this.held = undefined;
      this.emitStage(h, h.endNs, statusOf(h), h.attributes, false, failureReason);
    }
    if (this.stage) {
      const s = this.stage;
      this.stage = undefined;
      const attrs = this.enrichment?.attributes(this.ctx.maxAttributeLength) ?? {};
      this.enrichment = undefined;
      this.emitStage(s, end, statusOf(s), attrs, true, failureReason);
    }
    if (this.outer) {
      // The stage the whole job ran in fails, or is canceled, with the job.
      const o = this.outer;
      this.outer = undefined;
      this.emitStage(o, o.endNs ?? end, status, {}, o.endNs === undefined, failureReason);
    }
    this.updateCapture();
  }

  get firstTimestamp(): bigint | undefined {
    return this.log.firstTimestamp;
  }

  get lastTimestamp(): bigint | undefined {
    return this.log.lastTimestamp;
  }

  get retainedBytes(): number {
    return this.log.retainedBytes;
  }

  /** Log bytes parsed (the high-water offset). */
  get offset(): number {
    return this.log.offset;
  }

  /** Sections (and, past the allowance, stages) not exported; for `ci.sections.dropped` on job_execution. */
  get droppedSections(): number {
    return this.dropped;
  }

  get outputLimitHit(): boolean {
    return this.limitHit;
  }

  get spansEmitted(): number {
    return this.emitted;
  }

  snapshot(): LogSpansSnapshot {
    return {
      v: 1,
      log: this.log.snapshot(),
      spans: {
        v: 1,
        ...(this.stage ? { stage: serial(this.stage) } : {}),
        ...(this.enrichment ? { enrichment: this.enrichment.stage } : {}),
        sections: this.sections.map(serial),
        ...(this.held ? { held: { ...serial(this.held), endNs: this.held.endNs.toString(), attributes: this.held.attributes } } : {}),
        ...(this.outer
          ? { outer: { ...serial(this.outer), ...(this.outer.endNs !== undefined ? { endNs: this.outer.endNs.toString() } : {}) } }
          : {}),
        attempts: { ...this.attempts },
        emitted: this.emitted,
        dropped: this.dropped,
        outputLimitHit: this.limitHit,
      },
    };
  }

  private restoreSpans(s: StageSpansState): void {
    this.stage = s.stage ? unserial(s.stage) : undefined;
    // Enrichment gathered before a restart is lost; the stage span itself is not.
    this.enrichment = s.enrichment && ENRICHED_STAGES.has(s.enrichment) ? new StageEnrichment(s.enrichment) : undefined;
    this.sections = s.sections.map(unserial).slice(0, MAX_OPEN_SECTIONS);
    this.held = s.held ? { ...unserial(s.held), endNs: BigInt(s.held.endNs), attributes: s.held.attributes } : undefined;
    this.outer = s.outer ? { ...unserial(s.outer), ...(s.outer.endNs !== undefined ? { endNs: BigInt(s.outer.endNs) } : {}) } : undefined;
    this.attempts = { ...s.attempts };
    this.emitted = s.emitted;
    this.dropped = s.dropped;
    this.limitHit = s.outputLimitHit;
  }

  /** Step-runner is running the job (FF_CONCRETE): it writes the built-in stages, on stream 01. */
  private get inConcrete(): boolean {
    return this.outer !== undefined && this.outer.endNs === undefined;
  }

  private isRunnerMarker(m: SectionMarker): boolean {
    if (!isBuiltInStage(m.name)) return false;
    if (m.stream === 0) return true;
    // step-runner's output is passed through with its own stamps; the runner test data
    // shows stream 01, anything below the service streams (0f and up) is accepted.
    if (m.stream !== undefined && !(m.stream < 15 && this.inConcrete && m.name !== 'concrete')) return false;
    // Without FF_TIMESTAMPS there is no stream id, and with FF_CONCRETE step-runner's
    // stages share stream 01 with the script. Built-in stages never nest, so a
    // built-in name printed while a user-script stage runs is the script's.
    if (m.kind === 'start') return !this.stage || !isUserScriptStage(this.stage.name);
    if (m.name === 'concrete') return this.inConcrete && !this.sections.some((s) => s.name === m.name);
    return this.stage?.name === m.name && !this.sections.some((s) => s.name === m.name);
  }

  private onMarker(m: SectionMarker): void {
    // An unstamped step-runner stage end is only known to lie before this marker.
    if (this.stage?.endPending) this.endStage(m.timeNs, false);
    if (this.isRunnerMarker(m)) {
      if (m.name === 'concrete') {
        if (m.kind === 'start') this.startOuter(m);
        else if (this.inConcrete) this.endOuter(m.timeNs);
      } else if (m.kind === 'start') this.startStage(m);
      else if (this.stage?.name === m.name) {
        if (!m.stamped && this.inConcrete) this.stage.endPending = true;
        else this.endStage(m.timeNs, false);
      }
    } else if (m.kind === 'start') {
      this.startSection(m);
    } else {
      this.endSection(m);
    }
    this.updateCapture();
  }

  private startOuter(m: SectionMarker): void {
    if (this.outer) return;
    if (this.stage) this.endStage(m.timeNs, true);
    this.resolveHeld(m.name);
    const attempt = (this.attempts[m.name] ?? 0) + 1;
    this.attempts[m.name] = attempt;
    this.outer = { spanId: newSpanId(), parentSpanId: this.ctx.jobSpanId, name: m.name, kind: 'stage', startNs: m.timeNs, attempt };
  }

  private endOuter(endNs: bigint): void {
    if (this.stage) this.endStage(endNs, true);
    if (this.outer) this.outer.endNs = endNs;
  }

  private startStage(m: SectionMarker): void {
    if (this.stage) this.endStage(m.timeNs, true);
    this.resolveHeld(m.name);
    const attempt = (this.attempts[m.name] ?? 0) + 1;
    this.attempts[m.name] = attempt;
    this.stage = { spanId: newSpanId(), parentSpanId: this.ctx.jobSpanId, name: m.name, kind: 'stage', startNs: m.timeNs, attempt };
    this.enrichment = ENRICHED_STAGES.has(m.name) ? new StageEnrichment(m.name) : undefined;
  }

  private endStage(endNs: bigint, unclosed: boolean): void {
    const s = this.stage;
    if (!s) return;
    this.closeSections(0, endNs, false);
    this.stage = undefined;
    const attrs = this.enrichment?.attributes(this.ctx.maxAttributeLength) ?? {};
    this.enrichment = undefined;
    if (unclosed) s.unclosed = true;
    if (canFailJob(s.name)) {
      // Only one stage can be waiting: a newer one settles the older first.
      this.resolveHeld(s.name === this.held?.name ? '' : s.name);
      this.held = { ...s, endNs, attributes: attrs };
    } else {
      this.emitStage(s, endNs, 'success', attrs, false);
    }
  }

  /** What the start of stage `next` says about the held stage. */
  private resolveHeld(next: string): void {
    const h = this.held;
    if (!h) return;
    let failed: boolean;
    if (next === 'archive_cache_on_failure' || next === 'upload_artifacts_on_failure') failed = true;
    else if (next === h.name || (next === 'clear_worktree' && h.name === 'get_sources')) failed = true;
    else if (isNeutral(next)) return;
    else failed = false;
    this.held = undefined;
    this.emitStage(h, h.endNs, failed ? 'failed' : 'success', h.attributes, false);
  }

  private startSection(m: SectionMarker): void {
    if (this.sections.length >= MAX_OPEN_SECTIONS) {
      this.dropped++;
      return;
    }
    const parent = this.sections[this.sections.length - 1] ?? this.stage;
    this.sections.push({
      spanId: newSpanId(),
      parentSpanId: parent?.spanId ?? this.ctx.jobSpanId,
      name: m.name,
      kind: 'section',
      startNs: m.timeNs,
      attempt: 1,
    });
  }

  private endSection(m: SectionMarker): void {
    for (let i = this.sections.length - 1; i >= 0; i--) {
      if (this.sections[i]!.name !== m.name) continue;
      // Sections opened inside it and never ended end with it.
      this.closeSections(i + 1, m.timeNs, false, true);
      const s = this.sections.pop()!;
      this.emitSection(s, m.timeNs, false);
      return;
    }
    // An end without a start: nothing to close.
  }

  /** Close sections from index `from` up, innermost first. */
  private closeSections(from: number, endNs: bigint, truncated: boolean, unclosed = !truncated): void {
    while (this.sections.length > from) {
      const s = this.sections.pop()!;
      if (unclosed) s.unclosed = true;
      this.emitSection(s, endNs, truncated);
    }
  }

  private onLine(l: LogLine): void {
    if (this.enrichment && readsStream(this.enrichment.stage, l.stream)) this.enrichment.line(l.text);
  }

  private onOutputLimit(_n: OutputLimitNotice): void {
    this.limitHit = true;
    this.updateCapture();
  }

  private updateCapture(): void {
    this.log.captureLines = !this.finished && !this.limitHit && this.enrichment !== undefined && this.sections.length === 0;
  }

  private cut(v: string): string {
    return v.length > this.ctx.maxAttributeLength ? v.slice(0, this.ctx.maxAttributeLength) : v;
  }

  private emitStage(s: OpenSpan, endNs: bigint, status: StageStatus, extra: Attributes, truncated: boolean, failureReason?: string): void {
    const attributes: Record<string, AttributeValue | undefined> = {
      [CI.stageName]: this.cut(s.name),
      [CI.stageStatus]: status,
      [CI.stageAttempt]: s.attempt,
      [CI.stageTruncated]: truncated,
      ...extra,
    };
    if (s.unclosed) attributes[CI.sectionUnclosed] = true;
    if (this.emitted >= this.ctx.maxSpans + STAGE_ALLOWANCE) {
      this.dropped++;
      return;
    }
    this.emitSpan(
      s,
      endNs,
      attributes,
      status === 'failed'
        ? { code: SpanStatusCode.ERROR, ...(failureReason ? { message: this.cut(failureReason) } : {}) }
        : { code: SpanStatusCode.UNSET },
    );
  }

  private emitSection(s: OpenSpan, endNs: bigint, truncated: boolean): void {
    if (this.emitted >= this.ctx.maxSpans) {
      this.dropped++;
      return;
    }
    const attributes: Record<string, AttributeValue> = {
      [CI.sectionName]: this.cut(s.name),
      [CI.stageTruncated]: truncated,
    };
    if (s.unclosed) attributes[CI.sectionUnclosed] = true;
    this.emitSpan(s, endNs, attributes, { code: SpanStatusCode.UNSET });
  }

  private emitSpan(s: OpenSpan, endNs: bigint, attributes: Attributes, status: SpanRecord['status']): void {
    this.emitted++;
    this.emit({
      traceId: this.ctx.traceId,
      spanId: s.spanId,
      parentSpanId: s.parentSpanId,
      name: this.cut(s.name),
      kind: SpanKind.INTERNAL,
      startTimeUnixNano: s.startNs,
      endTimeUnixNano: endNs >= s.startNs ? endNs : s.startNs,
      attributes,
      status,
    });
  }
}
