// What the collector's arrivals mean to someone watching the demo: "job 101
// stage get_sources ended", "job 102 job_execution exported: failed". Spans
// arrive children first (a user section before its stage, an inner section
// before the outer one), and only the job span says which job it belongs to,
// so a span is told about once its chain up to a known job span is complete:
// the job span ids come from the proxy when each job is picked up.
//
// Pure: no I/O, no clock.
import type { ReceivedSpan } from '../telemetry/receiver.js';
import { CI } from '../telemetry/attributes.js';
import { isError, spanDuration } from '../inspect/trace-tree.js';

export const JOB_SPAN_NAME = 'job_execution';

export type ProgressKind = 'job' | 'stage' | 'section';

export interface ProgressEvent {
  kind: ProgressKind;
  jobId: number;
  /** Span name: the job span, a stage name or a section name. */
  name: string;
  durationNs: bigint;
  failed: boolean;
  /** 1 = a stage, 2 = a section directly in a stage, and so on; 0 for the job. */
  depth: number;
  /** The job span's ci.job.status. */
  status?: string;
}

/** What a span is to the demo: the job span, a runner build stage, or a section inside one. */
export function kindOf(span: ReceivedSpan): ProgressKind {
  if (span.name === JOB_SPAN_NAME) return 'job';
  return CI.stageName in span.attributes ? 'stage' : 'section';
}

export class SpanProgress {
  /** Span id → (job id, depth below the job span). */
  private readonly placed = new Map<string, { jobId: number; depth: number }>();
  /** Spans whose parent is not placed yet, by parent span id. */
  private readonly waiting = new Map<string, ReceivedSpan[]>();
  private waitingCount = 0;

  /** The proxy allocated `jobSpanId` for job `jobId` (tracker.jobContext). */
  jobStarted(jobId: number, jobSpanId: string): ProgressEvent[] {
    this.placed.set(jobSpanId, { jobId, depth: 0 });
    return this.release(jobSpanId);
  }

  /** Events for the spans of one export call, plus any earlier spans they place; parents before children. */
  receive(spans: readonly ReceivedSpan[]): ProgressEvent[] {
    const events: ProgressEvent[] = [];
    for (const span of spans) {
      if (span.name === JOB_SPAN_NAME) {
        const jobId = Number(span.attributes[CI.jobId]);
        const known = this.placed.get(span.spanId);
        const id = known?.jobId ?? (Number.isSafeInteger(jobId) ? jobId : undefined);
        if (id === undefined) continue;
        this.placed.set(span.spanId, { jobId: id, depth: 0 });
        events.push(this.event(span, id, 0));
        events.push(...this.release(span.spanId));
        continue;
      }
      const parent = this.placed.get(span.parentSpanId);
      if (!parent) {
        const list = this.waiting.get(span.parentSpanId) ?? [];
        list.push(span);
        this.waiting.set(span.parentSpanId, list);
        this.waitingCount += 1;
        continue;
      }
      events.push(...this.place(span, parent.jobId, parent.depth + 1));
    }
    return events;
  }

  /** Spans still waiting for a parent (a lost parent, or one of another job not followed). */
  get unplaced(): number {
    return this.waitingCount;
  }

  private place(span: ReceivedSpan, jobId: number, depth: number): ProgressEvent[] {
    this.placed.set(span.spanId, { jobId, depth });
    return [this.event(span, jobId, depth), ...this.release(span.spanId)];
  }

  private release(parentSpanId: string): ProgressEvent[] {
    const children = this.waiting.get(parentSpanId);
    if (!children) return [];
    this.waiting.delete(parentSpanId);
    this.waitingCount -= children.length;
    const parent = this.placed.get(parentSpanId)!;
    const sorted = [...children].sort((a, b) =>
      a.startTimeUnixNano < b.startTimeUnixNano ? -1 : a.startTimeUnixNano > b.startTimeUnixNano ? 1 : 0,
    );
    return sorted.flatMap((c) => this.place(c, parent.jobId, parent.depth + 1));
  }

  private event(span: ReceivedSpan, jobId: number, depth: number): ProgressEvent {
    const status = span.attributes[CI.jobStatus];
    return {
      kind: kindOf(span),
      jobId,
      name: span.name,
      durationNs: spanDuration(span),
      failed: isError(span),
      depth,
      ...(typeof status === 'string' ? { status } : {}),
    };
  }
}
