// When is a trace "completed", so the inspector can print it once, whole?
// Spans of one trace arrive over many export calls, children first (a stage
// span is exported when the stage ends, the job span when the job ends), and
// nothing on the wire says "this was the last one". The rule:
//
//   A trace is completed when its local root has arrived (a span with no
//   parent, or whose parent the exporter flagged as remote, like the proxy's
//   job_execution under GitLab's job_running span) and no new span for it
//   arrived for `quietMs`.
//
//   A trace whose root never arrives (the exporter lost it, or the root is
//   exported by another process that does not send here) is printed anyway
//   after `orphanQuietMs` of quiet, marked as without root.
//
//   A span that arrives for a trace already printed reopens it; it is printed
//   again, as an update, by the same rule.
//
// Pure: the caller passes the clock, and asks `nextCheckAt` when to look again.
import type { ReceivedSpan } from '../telemetry/receiver.js';
import { assembleTraces, isLocalRoot, type Trace } from './trace-tree.js';

export interface CompletionOptions {
  quietMs: number;
  /** Quiet time after which a trace without a local root is printed anyway. */
  orphanQuietMs: number;
  /** Traces kept for the HTML report; the least recently active are forgotten first. */
  maxTraces: number;
  /** Spans kept per trace; later ones are counted in `droppedSpans` and not shown. */
  maxSpansPerTrace: number;
}

export const DEFAULT_COMPLETION: CompletionOptions = {
  quietMs: 2000,
  orphanQuietMs: 20_000,
  maxTraces: 1000,
  maxSpansPerTrace: 10_000,
};

export interface CompletedTrace {
  trace: Trace;
  /** Its local root arrived (false: printed after `orphanQuietMs`, or at shutdown, without one). */
  rootReceived: boolean;
  /** It had been printed before and got more spans since. */
  update: boolean;
}

interface Pending {
  spans: Map<string, ReceivedSpan>;
  rootReceived: boolean;
  lastSpanAt: number;
  /** Spans arrived since it was last reported. */
  dirty: boolean;
  reported: boolean;
}

export class TraceCompletion {
  private readonly traces = new Map<string, Pending>();
  private readonly options: CompletionOptions;
  droppedSpans = 0;
  forgottenTraces = 0;

  constructor(options: Partial<CompletionOptions> = {}) {
    this.options = { ...DEFAULT_COMPLETION, ...options };
  }

  add(spans: readonly ReceivedSpan[], nowMs: number): void {
    for (const span of spans) {
      let entry = this.traces.get(span.traceId);
      if (!entry) {
        entry = { spans: new Map(), rootReceived: false, lastSpanAt: nowMs, dirty: true, reported: false };
        this.traces.set(span.traceId, entry);
      }
      if (!entry.spans.has(span.spanId) && entry.spans.size >= this.options.maxSpansPerTrace) {
        this.droppedSpans += 1;
        continue;
      }
      entry.spans.set(span.spanId, span);
      if (isLocalRoot(span)) entry.rootReceived = true;
      entry.lastSpanAt = nowMs;
      entry.dirty = true;
      // Map order is insertion order: re-inserting keeps it "least recently active first".
      this.traces.delete(span.traceId);
      this.traces.set(span.traceId, entry);
    }
    this.forgetOldest();
  }

  private forgetOldest(): void {
    while (this.traces.size > this.options.maxTraces) {
      // Prefer forgetting a trace already printed; else the least recently active.
      let victim: string | undefined;
      for (const [id, e] of this.traces) {
        if (!e.dirty) {
          victim = id;
          break;
        }
      }
      victim ??= this.traces.keys().next().value as string;
      this.traces.delete(victim);
      this.forgottenTraces += 1;
    }
  }

  private dueAt(entry: Pending): number {
    return entry.lastSpanAt + (entry.rootReceived ? this.options.quietMs : this.options.orphanQuietMs);
  }

  private report(entry: Pending): CompletedTrace {
    const update = entry.reported;
    entry.dirty = false;
    entry.reported = true;
    const [trace] = assembleTraces([...entry.spans.values()]);
    return { trace: trace!, rootReceived: entry.rootReceived, update };
  }

  /** Traces that completed by `nowMs` and were not reported since their last span, oldest first. */
  due(nowMs: number): CompletedTrace[] {
    const ready = [...this.traces.values()].filter((e) => e.dirty && this.dueAt(e) <= nowMs);
    return ready.map((e) => this.report(e)).sort(byStart);
  }

  /** Every trace not reported since its last span, completed or not: for shutdown. */
  flush(): CompletedTrace[] {
    return [...this.traces.values()]
      .filter((e) => e.dirty)
      .map((e) => this.report(e))
      .sort(byStart);
  }

  /** When `due` may next return something, or undefined when nothing is waiting. */
  nextCheckAt(): number | undefined {
    let next: number | undefined;
    for (const e of this.traces.values()) {
      if (!e.dirty) continue;
      const at = this.dueAt(e);
      if (next === undefined || at < next) next = at;
    }
    return next;
  }

  /** Every trace kept, reported or not, in start order: what the HTML report shows. */
  all(): Trace[] {
    return assembleTraces([...this.traces.values()].flatMap((e) => [...e.spans.values()]));
  }

  get pendingCount(): number {
    let n = 0;
    for (const e of this.traces.values()) if (e.dirty) n += 1;
    return n;
  }
}

function byStart(a: CompletedTrace, b: CompletedTrace): number {
  const x = a.trace.startTimeUnixNano;
  const y = b.trace.startTimeUnixNano;
  return x !== y ? (x < y ? -1 : 1) : a.trace.traceId < b.trace.traceId ? -1 : 1;
}
