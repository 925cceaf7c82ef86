// spans.ts: ids, times and the SpanRecord → ReadableSpan edge. Pure functions,
// called directly; the wire encoding of the result is in otlp-transport.test.ts.
import t from 'tap';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  isValidSpanId,
  isValidTraceId,
  msToNanos,
  newSpanId,
  newTraceId,
  nowNanos,
  SpanKind,
  SpanStatusCode,
  toHrTime,
  toReadableSpan,
  traceparent,
  type SpanRecord,
} from '../../src/telemetry/spans.js';

t.test('id validity: lowercase hex of the right length, never all zero', async (t) => {
  t.ok(isValidTraceId('0af7651916cd43dd8448eb211c80319c'));
  t.notOk(isValidTraceId('0'.repeat(32)));
  t.notOk(isValidTraceId('0AF7651916CD43DD8448EB211C80319C'), 'uppercase is not the wire form');
  t.notOk(isValidTraceId('0af7651916cd43dd8448eb211c80319'), '31 digits');
  t.ok(isValidSpanId('b7ad6b7169203331'));
  t.notOk(isValidSpanId('0'.repeat(16)));
  t.notOk(isValidSpanId('b7ad6b716920333g'));
});

t.test('new ids are valid and distinct across pool refills', async (t) => {
  const spans = new Set<string>();
  const traces = new Set<string>();
  // 4 KiB pool / 8 bytes = 512 span ids per refill: 2000 crosses several refills.
  for (let i = 0; i < 2000; i++) {
    spans.add(newSpanId());
    traces.add(newTraceId());
  }
  t.equal(spans.size, 2000);
  t.equal(traces.size, 2000);
  t.ok([...spans].every(isValidSpanId));
  t.ok([...traces].every(isValidTraceId));
});

t.test('times: milliseconds to nanoseconds keeps the fraction; HrTime splits seconds and nanos', async (t) => {
  // Fractions a double holds exactly at this magnitude (a wall-clock ms value has ~0.24 µs resolution).
  t.equal(msToNanos(1_700_000_000_123.5), 1_700_000_000_123_500_000n);
  t.equal(msToNanos(0.000125), 125n);
  t.equal(msToNanos(0), 0n);
  t.same(toHrTime(1_700_000_000_123_456_789n), [1_700_000_000, 123_456_789]);
  const before = msToNanos(Date.now() - 1000);
  const now = nowNanos();
  t.ok(now > before, 'nowNanos is on the wall clock');
});

t.test('traceparent: W3C version 00, sampled flag', async (t) => {
  t.equal(traceparent('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331'), '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  t.equal(traceparent('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', false).slice(-3), '-00');
});

t.test('toReadableSpan: ids, remote parent, trace state, times, and an end before the start clamped', async (t) => {
  const resource = resourceFromAttributes({ 'service.name': 'gitlab-otel-test' });
  const record: SpanRecord = {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    parentSpanId: '00f067aa0ba902b7',
    parentIsRemote: true,
    traceState: 'gl=1',
    name: 'job_execution',
    kind: SpanKind.SERVER,
    startTimeUnixNano: 2_000_000_500n,
    endTimeUnixNano: 5_000_000_000n,
    attributes: { 'ci.job.id': 7 },
    status: { code: SpanStatusCode.ERROR, message: 'failed' },
  };
  const s = toReadableSpan(record, resource);
  t.equal(s.spanContext().traceId, record.traceId);
  t.equal(s.spanContext().spanId, record.spanId);
  t.equal(s.spanContext().traceState?.get('gl'), '1');
  t.match(s.parentSpanContext, { traceId: record.traceId, spanId: '00f067aa0ba902b7', isRemote: true });
  t.same(s.startTime, [2, 500]);
  t.same(s.endTime, [5, 0]);
  t.same(s.duration, [2, 999_999_500]);
  t.same(s.status, { code: SpanStatusCode.ERROR, message: 'failed' });
  t.equal(s.resource, resource);
  t.equal(s.kind, SpanKind.SERVER);

  const root = toReadableSpan(
    { ...record, parentSpanId: undefined, parentIsRemote: undefined, traceState: undefined, endTimeUnixNano: 1n },
    resource,
  );
  t.equal(root.parentSpanContext, undefined);
  t.equal(root.spanContext().traceState, undefined);
  t.same(root.endTime, root.startTime, 'an end before the start becomes the start');
  t.same(root.duration, [0, 0]);
  const local = toReadableSpan({ ...record, parentIsRemote: undefined }, resource);
  t.equal(local.parentSpanContext?.isRemote, false);
});
