// Spans as plain data. The proxy knows every id and timestamp itself (trace id
// and parent from the job payload, times from log stamps), so it never asks an
// SDK tracer to invent them; a SpanRecord is turned into the SDK's ReadableSpan
// only at the exporter's edge.
import { randomBytes } from 'node:crypto';
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';

export { SpanKind, SpanStatusCode };

export interface SpanStatus {
  readonly code: SpanStatusCode;
  readonly message?: string;
}

export interface SpanRecord {
  /** 32 lowercase hex digits, never all zero. */
  readonly traceId: string;
  /** 16 lowercase hex digits, never all zero. */
  readonly spanId: string;
  readonly parentSpanId?: string;
  /** The parent lives in another process (GitLab, the bridge job). */
  readonly parentIsRemote?: boolean;
  readonly traceState?: string;
  readonly name: string;
  readonly kind: SpanKind;
  /** Nanoseconds since the Unix epoch. */
  readonly startTimeUnixNano: bigint;
  readonly endTimeUnixNano: bigint;
  readonly attributes: Attributes;
  readonly status: SpanStatus;
}

export const INSTRUMENTATION_SCOPE = { name: 'gitlab-otel', version: '0.1.0' } as const;

const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;

export function isValidTraceId(id: string): boolean {
  return TRACE_ID.test(id) && !/^0+$/.test(id);
}

export function isValidSpanId(id: string): boolean {
  return SPAN_ID.test(id) && !/^0+$/.test(id);
}

// Ids come from a pool of random bytes refilled 4 KiB at a time: a
// randomBytes call per span costs more than the rest of building the span.
let pool = Buffer.alloc(0);
let poolOffset = 0;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    pool = randomBytes(4096);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

export function newSpanId(): string {
  let id: string;
  do id = randomHex(8);
  while (!isValidSpanId(id));
  return id;
}

export function newTraceId(): string {
  let id: string;
  do id = randomHex(16);
  while (!isValidTraceId(id));
  return id;
}

export function msToNanos(ms: number): bigint {
  const whole = Math.floor(ms);
  return BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
}

export function nowNanos(): bigint {
  // Date.now() has millisecond resolution; performance.timeOrigin + now() gives
  // sub-millisecond precision on the same wall clock.
  return msToNanos(performance.timeOrigin + performance.now());
}

export function toHrTime(ns: bigint): HrTime {
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}

/** W3C traceparent; the flags say whether the trace was sampled. */
export function traceparent(traceId: string, spanId: string, sampled = true): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

export function toReadableSpan(span: SpanRecord, resource: Resource): ReadableSpan {
  const start = toHrTime(span.startTimeUnixNano);
  const endNs = span.endTimeUnixNano >= span.startTimeUnixNano ? span.endTimeUnixNano : span.startTimeUnixNano;
  const spanContext = {
    traceId: span.traceId,
    spanId: span.spanId,
    traceFlags: TraceFlags.SAMPLED,
    ...(span.traceState ? { traceState: new TraceState(span.traceState) } : {}),
  };
  return {
    name: span.name,
    kind: span.kind,
    spanContext: () => spanContext,
    parentSpanContext: span.parentSpanId
      ? {
          traceId: span.traceId,
          spanId: span.parentSpanId,
          traceFlags: TraceFlags.SAMPLED,
          isRemote: span.parentIsRemote ?? false,
        }
      : undefined,
    startTime: start,
    endTime: toHrTime(endNs),
    duration: toHrTime(endNs - span.startTimeUnixNano),
    ended: true,
    status: span.status,
    attributes: span.attributes,
    links: [],
    events: [],
    resource,
    instrumentationScope: INSTRUMENTATION_SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}
