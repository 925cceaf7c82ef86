// Trace assembly: the flat spans a receiver decoded, grouped per trace and
// hung into trees (job_execution → stages → user sections). Pure: the
// inspector, the demo and the HTML report all render from these trees.
import type { ReceivedSpan } from '../telemetry/receiver.js';
import { isQueueBar, queueBars } from './queue-bars.js';

/** OTLP Span.flags bits telling whether the parent lives in another process. */
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

/** OTLP STATUS_CODE_ERROR. */
export const STATUS_ERROR = 2;

/**
 * Why a node sits where it does: `none` has no parent id, `remote` names a
 * parent in another process (flagged so by the exporter), `missing` names a
 * parent that has not (or not yet) arrived, `cycle` was cut out of a parent
 * loop that malformed input can describe, `deep` was re-hung at the top
 * because it sat deeper than `MAX_DEPTH` (real traces nest a handful of
 * levels; the cap keeps a hostile chain of spans from exhausting the stack).
 */
export type ParentState = 'present' | 'none' | 'remote' | 'missing' | 'cycle' | 'deep';

export const MAX_DEPTH = 32;

export interface TraceNode {
  readonly span: ReceivedSpan;
  readonly depth: number;
  readonly parent: ParentState;
  readonly children: readonly TraceNode[];
}

export interface Trace {
  readonly traceId: string;
  /** Top-level nodes: true roots and orphans, in display order. */
  readonly roots: readonly TraceNode[];
  readonly spanCount: number;
  readonly errorCount: number;
  /** Earliest start and latest end over all spans (ns since epoch). */
  readonly startTimeUnixNano: bigint;
  readonly endTimeUnixNano: bigint;
}

/** A span's end, never before its start (a missing end time decodes as 0). */
export function spanEnd(span: ReceivedSpan): bigint {
  return span.endTimeUnixNano > span.startTimeUnixNano ? span.endTimeUnixNano : span.startTimeUnixNano;
}

export function spanDuration(span: ReceivedSpan): bigint {
  return spanEnd(span) - span.startTimeUnixNano;
}

export function isError(span: ReceivedSpan): boolean {
  return span.status.code === STATUS_ERROR;
}

/** Whether the exporter flagged this span's parent as living in another process. */
export function hasRemoteParent(span: ReceivedSpan): boolean {
  return span.parentSpanId !== '' && (span.flags & (HAS_IS_REMOTE | IS_REMOTE)) === (HAS_IS_REMOTE | IS_REMOTE);
}

/**
 * A local root: the top of what this process exported for the trace. Either
 * the span has no parent, or its parent is remote (the runner proxy's
 * job_execution hangs under GitLab's job_running span).
 */
export function isLocalRoot(span: ReceivedSpan): boolean {
  return span.parentSpanId === '' || hasRemoteParent(span);
}

/**
 * Where a span sorts among its siblings: its start, except a derived `queued` bar, which sorts at the start of
 * the job it precedes (its own end), right before that job, so with several jobs each bar sits above its own.
 */
function sortTime(span: ReceivedSpan): bigint {
  return isQueueBar(span) ? span.endTimeUnixNano : span.startTimeUnixNano;
}

function compareSpans(a: ReceivedSpan, b: ReceivedSpan): number {
  const at = sortTime(a);
  const bt = sortTime(b);
  if (at !== bt) return at < bt ? -1 : 1;
  if (isQueueBar(a) !== isQueueBar(b)) return isQueueBar(a) ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.spanId < b.spanId ? -1 : a.spanId > b.spanId ? 1 : 0;
}

interface Draft {
  span: ReceivedSpan;
  parent: ParentState;
  children: Draft[];
}

/** Drafts → nodes; children below MAX_DEPTH go to `rehung`, to become top-level nodes. */
function freeze(draft: Draft, depth: number, rehung: Draft[]): TraceNode {
  const children = draft.children.sort((a, b) => compareSpans(a.span, b.span));
  if (depth + 1 >= MAX_DEPTH) {
    for (const child of children) child.parent = 'deep';
    rehung.push(...children);
  }
  return {
    span: draft.span,
    depth,
    parent: draft.parent,
    children: depth + 1 >= MAX_DEPTH ? [] : children.map((c) => freeze(c, depth + 1, rehung)),
  };
}

/** One trace's spans (all with the same trace id) as a tree. */
function assembleOne(traceId: string, spans: ReceivedSpan[]): Trace {
  // A span re-sent by a retrying exporter arrives twice; the later copy wins.
  const byId = new Map<string, Draft>();
  for (const span of spans) byId.set(span.spanId, { span, parent: 'none', children: [] });
  const received = byId.size;
  // A `queued` bar before each job, from its queue-time attribute (queue-bars.ts).
  for (const bar of queueBars([...byId.values()].map((d) => d.span))) byId.set(bar.spanId, { span: bar, parent: 'none', children: [] });

  const roots: Draft[] = [];
  for (const draft of byId.values()) {
    const { span } = draft;
    const parent = span.parentSpanId === '' || span.parentSpanId === span.spanId ? undefined : byId.get(span.parentSpanId);
    if (parent) {
      draft.parent = 'present';
      parent.children.push(draft);
    } else {
      draft.parent = span.parentSpanId === '' ? 'none' : hasRemoteParent(span) ? 'remote' : 'missing';
      roots.push(draft);
    }
  }

  // Parent ids that form a loop leave spans unreachable from any root; cut
  // each loop at its earliest span so nothing received is ever hidden.
  const reached = new Set<Draft>();
  const mark = (d: Draft): void => {
    const stack = [d];
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (reached.has(next)) continue;
      reached.add(next);
      stack.push(...next.children);
    }
  };
  roots.forEach(mark);
  if (reached.size < byId.size) {
    const stranded = [...byId.values()].filter((d) => !reached.has(d)).sort((a, b) => compareSpans(a.span, b.span));
    for (const d of stranded) {
      if (reached.has(d)) continue;
      // Climb until a span repeats: it and those after it form the loop.
      const path: Draft[] = [];
      let at: Draft | undefined = d;
      while (at && !path.includes(at)) {
        path.push(at);
        at = byId.get(at.span.parentSpanId);
      }
      if (!at) continue; // unreachable: a stranded span always leads into a loop
      const loop = path.slice(path.indexOf(at)).sort((a, b) => compareSpans(a.span, b.span));
      const cut = loop[0]!;
      const parent = byId.get(cut.span.parentSpanId);
      if (parent) parent.children = parent.children.filter((c) => c !== cut);
      cut.parent = 'cycle';
      roots.push(cut);
      mark(cut);
    }
  }

  let start: bigint | undefined;
  let end: bigint | undefined;
  let errorCount = 0;
  for (const { span } of byId.values()) {
    if (start === undefined || span.startTimeUnixNano < start) start = span.startTimeUnixNano;
    const e = spanEnd(span);
    if (end === undefined || e > end) end = e;
    if (isError(span)) errorCount += 1;
  }

  const rehung: Draft[] = [];
  const top = roots.map((r) => freeze(r, 0, rehung));
  for (let next = rehung.shift(); next; next = rehung.shift()) top.push(freeze(next, 0, rehung));

  return {
    traceId,
    roots: top.sort((a, b) => compareSpans(a.span, b.span)),
    spanCount: received,
    errorCount,
    startTimeUnixNano: start ?? 0n,
    endTimeUnixNano: end ?? 0n,
  };
}

/** Groups spans by trace id and builds each trace's tree; traces ordered by start time, then id. */
export function assembleTraces(spans: readonly ReceivedSpan[]): Trace[] {
  const byTrace = new Map<string, ReceivedSpan[]>();
  for (const span of spans) {
    const list = byTrace.get(span.traceId);
    if (list) list.push(span);
    else byTrace.set(span.traceId, [span]);
  }
  return [...byTrace.entries()]
    .map(([id, list]) => assembleOne(id, list))
    .sort((a, b) =>
      a.startTimeUnixNano !== b.startTimeUnixNano
        ? a.startTimeUnixNano < b.startTimeUnixNano
          ? -1
          : 1
        : a.traceId < b.traceId
          ? -1
          : a.traceId > b.traceId
            ? 1
            : 0,
    );
}

/** A top-level node whose parent id names a span not drawn above it. */
export function isDetached(node: TraceNode): boolean {
  return node.parent === 'missing' || node.parent === 'cycle' || node.parent === 'deep';
}

/** Nodes in display order (depth first, children in start order). */
export function* walk(trace: Trace): Generator<TraceNode> {
  const stack = [...trace.roots].reverse();
  while (stack.length > 0) {
    const node = stack.pop()!;
    yield node;
    for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]!);
  }
}

/** The span a trace is named after: its first local root, else its first top-level span. */
export function headSpan(trace: Trace): ReceivedSpan | undefined {
  return (
    trace.roots.find((r) => isLocalRoot(r.span) && !isQueueBar(r.span)) ??
    trace.roots.find((r) => !isQueueBar(r.span)) ??
    trace.roots[0]
  )?.span;
}

/** Where a span sits on its trace's time axis, as fractions of the trace's extent (0..1). */
export function placement(trace: Trace, span: ReceivedSpan): { offset: number; width: number } {
  const extent = trace.endTimeUnixNano - trace.startTimeUnixNano;
  if (extent <= 0n) return { offset: 0, width: 0 };
  const offset = Number(span.startTimeUnixNano - trace.startTimeUnixNano) / Number(extent);
  const width = Number(spanDuration(span)) / Number(extent);
  return { offset, width };
}
