// The machine-readable form of an assembled trace (`inspect --json`, and the
// demo's `--json`): one object per trace, spans nested as in the waterfall.
// Exact times stay exact as decimal strings (nanoseconds exceed 2^53); the
// millisecond figures beside them are for people and quick scripts.
import type { AttributeValue } from '../telemetry/receiver.js';
import { headSpan, isLocalRoot, spanDuration, spanEnd, type ParentState, type Trace, type TraceNode } from './trace-tree.js';

export interface SpanJson {
  spanId: string;
  parentSpanId: string;
  parent: ParentState;
  name: string;
  /** OTLP SpanKind number (1 = INTERNAL … 5 = CONSUMER). */
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  /** From the trace's start. */
  startOffsetMs: number;
  durationMs: number;
  status: { code: number; message: string };
  attributes: Record<string, AttributeValue>;
  children: SpanJson[];
}

export interface TraceJson {
  traceId: string;
  /** The name of the trace's root (its first local root, else its first top-level span). */
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  durationMs: number;
  spanCount: number;
  errorCount: number;
  /** Whether the trace's local root (see `isLocalRoot`) was received; false when only children arrived. */
  rootReceived: boolean;
  resource: Record<string, AttributeValue>;
  spans: SpanJson[];
}

const nsToMs = (ns: bigint): number => Number(ns) / 1e6;

function spanJson(trace: Trace, node: TraceNode): SpanJson {
  const { span } = node;
  return {
    spanId: span.spanId,
    parentSpanId: span.parentSpanId,
    parent: node.parent,
    name: span.name,
    kind: span.kind,
    startTimeUnixNano: String(span.startTimeUnixNano),
    endTimeUnixNano: String(spanEnd(span)),
    startOffsetMs: nsToMs(span.startTimeUnixNano - trace.startTimeUnixNano),
    durationMs: nsToMs(spanDuration(span)),
    status: { code: span.status.code, message: span.status.message },
    attributes: Object.fromEntries(Object.entries(span.attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    children: node.children.map((c) => spanJson(trace, c)),
  };
}

export function traceToJson(trace: Trace): TraceJson {
  const head = headSpan(trace);
  return {
    traceId: trace.traceId,
    name: head?.name ?? '',
    startTimeUnixNano: String(trace.startTimeUnixNano),
    endTimeUnixNano: String(trace.endTimeUnixNano),
    durationMs: nsToMs(trace.endTimeUnixNano - trace.startTimeUnixNano),
    spanCount: trace.spanCount,
    errorCount: trace.errorCount,
    rootReceived: trace.roots.some((r) => isLocalRoot(r.span)),
    resource: head?.resource ?? {},
    spans: trace.roots.map((r) => spanJson(trace, r)),
  };
}
