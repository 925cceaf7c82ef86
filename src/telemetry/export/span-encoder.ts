// SpanRecords straight to an OTLP ExportTraceServiceRequest (protobuf wire
// format), without building the SDK's ReadableSpan objects first. The bytes are
// the ones the SDK's ProtobufTraceSerializer (@opentelemetry/otlp-transformer)
// writes for the same spans after `toReadableSpan`: same fields, same order,
// same defaults written; test/telemetry/export/span-encoder.test.ts compares the
// two byte for byte. What this saves is the per-span conversion (closures, hr-time
// pairs, hex-to-bytes arrays) and the serializer's size-estimating first pass
// (docs/export.md#span-encoder).
import { TraceState } from '@opentelemetry/core';
import type { AttributeValue, Attributes } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import { INSTRUMENTATION_SCOPE, type SpanRecord } from '../spans.js';

/** Spans of one resource, as the queue holds them. */
export interface ResourceRecords {
  readonly records: readonly SpanRecord[];
  readonly resource: Resource;
}

// Span flags (opentelemetry-proto trace.proto SpanFlags): the W3C flags byte (always sampled here) and
// "has is_remote" set, "is_remote" when the parent lives in another process; what the SDK serializer writes.
const FLAGS_LOCAL = 0x01 | 0x100;
const FLAGS_REMOTE = FLAGS_LOCAL | 0x200;
const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;

/**
 * A protobuf writer over one growing scratch buffer, reused from call to call:
 * an encoding is written here and copied out once at the right size.
 * Length-delimited fields reserve the length's bytes by a guess and move the
 * content when the guess was wrong (rare: the guesses fit our message sizes).
 */
class Writer {
  buf: Buffer = Buffer.allocUnsafe(64 * 1024);
  /** For fixed64: DataView's setBigUint64 writes a bigint without allocating (Buffer's writeBigUInt64LE makes three). */
  view: DataView = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  pos = 0;

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.reset(next);
  }

  reset(buf: Buffer): void {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  }

  /** One byte: every tag we write below field 16 fits one. */
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** A non-negative integer below 2^32. */
  varint32(v: number): void {
    this.ensure(5);
    const buf = this.buf;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  /** An int64 from an integral number in the int64 range, two's complement when negative (as the SDK writer does). */
  varint64(value: number): void {
    if (value >= 0 && value <= 0xffffffff) return this.varint32(value);
    let low: number;
    let high: number;
    const abs = Math.abs(value);
    low = abs >>> 0;
    high = (abs / 0x100000000) >>> 0;
    if (value < 0) {
      low = ~low >>> 0;
      high = ~high >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    this.ensure(10);
    const buf = this.buf;
    while (high > 0 || low > 0x7f) {
      buf[this.pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buf[this.pos++] = low & 0x7f;
  }

  fixed32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  /** Nanoseconds as fixed64, wrapped to 64 bits (setBigUint64 takes the value modulo 2^64) like the SDK's writer. */
  fixed64(ns: bigint): void {
    this.ensure(8);
    this.view.setBigUint64(this.pos, ns, true);
    this.pos += 8;
  }

  double(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  /** Hex id as bytes, length-prefixed; the SDK's hexToBinary digit rule (upper case read too). */
  hexBytes(hex: string): void {
    const n = hex.length >>> 1;
    this.varint32(n);
    this.ensure(n);
    const buf = this.buf;
    for (let i = 0; i < n; i++) buf[this.pos++] = (digit(hex.charCodeAt(2 * i)) << 4) | digit(hex.charCodeAt(2 * i + 1));
  }

  bytes(b: Uint8Array): void {
    this.varint32(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** UTF-8, length-prefixed. ASCII (nearly every key and value) is copied in one pass. */
  string(s: string): void {
    const len = s.length;
    const start = this.pos;
    this.varint32(len);
    this.ensure(len);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        // Not ASCII: the UTF-8 length first, then the native encoder (lone surrogates become U+FFFD, as with TextEncoder).
        this.pos = start;
        const bytes = Buffer.byteLength(s, 'utf8');
        this.varint32(bytes);
        this.ensure(bytes);
        this.pos += this.buf.write(s, this.pos, 'utf8');
        return;
      }
      buf[p++] = c;
    }
    this.pos = p;
  }

  /** Reserves `guess` bytes for a length and returns where the content starts. */
  begin(guess: number): number {
    this.ensure(guess);
    this.pos += guess;
    return this.pos;
  }

  /** Writes the length of what was written since `begin`, moving the content if the guess was wrong. */
  end(contentStart: number, guess: number): void {
    const length = this.pos - contentStart;
    const size = varintSize(length);
    let at = contentStart - guess;
    if (size !== guess) {
      this.ensure(size - guess);
      this.buf.copyWithin(at + size, contentStart, this.pos);
      this.pos += size - guess;
    }
    const buf = this.buf;
    let v = length;
    while (v > 0x7f) {
      buf[at++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[at] = v;
  }
}

function digit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return c - 55;
}

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

// Tags: (field << 3) | wire type; wire types 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
const tag = (field: number, wire: number): number => (field << 3) | wire;

function writeAttributes(w: Writer, attributes: Attributes, field: number): void {
  const t = tag(field, 2);
  for (const key in attributes) {
    if (!Object.prototype.hasOwnProperty.call(attributes, key)) continue;
    w.byte(t);
    const kv = w.begin(1);
    writeKeyValue(w, key, attributes[key]);
    w.end(kv, 1);
  }
}

function writeKeyValue(w: Writer, key: string, value: unknown): void {
  w.byte(tag(1, 2));
  w.string(key);
  w.byte(tag(2, 2));
  const v = w.begin(1);
  writeAnyValue(w, value);
  w.end(v, 1);
}

/** AnyValue by the value's type, as the SDK serializer decides it; an unsupported value writes an empty AnyValue. */
function writeAnyValue(w: Writer, value: unknown): void {
  const t = typeof value;
  if (t === 'string') {
    w.byte(tag(1, 2));
    w.string(value as string);
  } else if (t === 'boolean') {
    w.byte(tag(2, 0));
    w.byte(value ? 1 : 0);
  } else if (t === 'number') {
    const n = value as number;
    if (Number.isInteger(n) && n >= MIN_INT64 && n < MAX_INT64) {
      w.byte(tag(3, 0));
      w.varint64(n);
    } else {
      w.byte(tag(4, 1));
      w.double(n);
    }
  } else if (value instanceof Uint8Array) {
    w.byte(tag(7, 2));
    w.bytes(value);
  } else if (Array.isArray(value)) {
    w.byte(tag(5, 2));
    const arr = w.begin(1);
    for (const item of value as AttributeValue[]) {
      w.byte(tag(1, 2));
      const v = w.begin(1);
      writeAnyValue(w, item);
      w.end(v, 1);
    }
    w.end(arr, 1);
  } else if (t === 'object' && value !== null) {
    w.byte(tag(6, 2));
    const list = w.begin(1);
    const obj = value as Record<string, unknown>;
    for (const k in obj) {
      if (!Object.prototype.hasOwnProperty.call(obj, k)) continue;
      w.byte(tag(1, 2));
      const kv = w.begin(1);
      writeKeyValue(w, k, obj[k]);
      w.end(kv, 1);
    }
    w.end(list, 1);
  }
}

function writeSpan(w: Writer, s: SpanRecord): void {
  w.byte(tag(1, 2));
  w.hexBytes(s.traceId);
  w.byte(tag(2, 2));
  w.hexBytes(s.spanId);
  if (s.traceState) {
    // Normalised as the SDK's TraceState does (invalid members dropped, at most 32 kept).
    const ts = new TraceState(s.traceState).serialize();
    if (ts) {
      w.byte(tag(3, 2));
      w.string(ts);
    }
  }
  if (s.parentSpanId) {
    w.byte(tag(4, 2));
    w.hexBytes(s.parentSpanId);
  }
  w.byte(tag(5, 2));
  w.string(s.name);
  // OTLP's SpanKind is the API's plus one (0 is UNSPECIFIED there).
  w.byte(tag(6, 0));
  w.varint32(s.kind + 1);
  w.byte(tag(7, 1));
  w.fixed64(s.startTimeUnixNano);
  w.byte(tag(8, 1));
  // An end before the start is sent as the start (toReadableSpan does the same).
  w.fixed64(s.endTimeUnixNano >= s.startTimeUnixNano ? s.endTimeUnixNano : s.startTimeUnixNano);
  writeAttributes(w, s.attributes, 9);
  // dropped_attributes_count, dropped_events_count, dropped_links_count: always 0, written as the SDK does.
  w.byte(tag(10, 0));
  w.byte(0);
  w.byte(tag(12, 0));
  w.byte(0);
  w.byte(tag(14, 0));
  w.byte(0);
  w.byte(tag(15, 2));
  const st = w.begin(1);
  if (s.status.message) {
    w.byte(tag(2, 2));
    w.string(s.status.message);
  }
  w.byte(tag(3, 0));
  w.varint32(s.status.code);
  w.end(st, 1);
  // Field 16 needs a two-byte tag.
  w.varint32(tag(16, 5));
  w.fixed32(s.parentSpanId && s.parentIsRemote ? FLAGS_REMOTE : FLAGS_LOCAL);
}

function writeResourceSpans(w: Writer, resource: Resource, spans: readonly (readonly SpanRecord[])[]): void {
  w.byte(tag(1, 2));
  const rs = w.begin(3);
  // Resource: attributes, then dropped_attributes_count 0.
  w.byte(tag(1, 2));
  const r = w.begin(2);
  writeAttributes(w, resource.attributes, 1);
  w.byte(tag(2, 0));
  w.byte(0);
  w.end(r, 2);
  // One ScopeSpans: every span of ours has the same instrumentation scope.
  w.byte(tag(2, 2));
  const ss = w.begin(3);
  w.byte(tag(1, 2));
  const sc = w.begin(1);
  w.byte(tag(1, 2));
  w.string(INSTRUMENTATION_SCOPE.name);
  w.byte(tag(2, 2));
  w.string(INSTRUMENTATION_SCOPE.version);
  w.end(sc, 1);
  for (const list of spans)
    for (const s of list) {
      w.byte(tag(2, 2));
      const sp = w.begin(2);
      writeSpan(w, s);
      w.end(sp, 2);
    }
  w.end(ss, 3);
  if (resource.schemaUrl) {
    w.byte(tag(3, 2));
    w.string(resource.schemaUrl);
  }
  w.end(rs, 3);
}

const writer = new Writer();
/** The scratch buffer is kept between calls up to this size; a larger one (a huge batch) is let go after use. */
const KEEP_SCRATCH_BYTES = 4 << 20;

/**
 * One ExportTraceServiceRequest for the given spans: one ResourceSpans per
 * distinct Resource object, in order of first appearance, as the SDK
 * serializer groups them. Synchronous; the returned Buffer is the caller's.
 */
export function encodeResourceSpans(groups: readonly ResourceRecords[]): Buffer {
  const w = writer;
  w.pos = 0;
  try {
    if (groups.length === 1) {
      if (groups[0]!.records.length > 0) writeResourceSpans(w, groups[0]!.resource, [groups[0]!.records]);
    } else {
      const byResource = new Map<Resource, (readonly SpanRecord[])[]>();
      for (const g of groups) {
        if (g.records.length === 0) continue;
        const lists = byResource.get(g.resource);
        if (lists) lists.push(g.records);
        else byResource.set(g.resource, [g.records]);
      }
      for (const [resource, lists] of byResource) writeResourceSpans(w, resource, lists);
    }
    return Buffer.from(w.buf.subarray(0, w.pos));
  } finally {
    if (w.buf.length > KEEP_SCRATCH_BYTES) w.reset(Buffer.allocUnsafe(64 * 1024));
    w.pos = 0;
  }
}

/** One resource's spans as one ExportTraceServiceRequest. */
export function encodeSpanRecords(spans: readonly SpanRecord[], resource: Resource): Buffer {
  return encodeResourceSpans([{ records: spans, resource }]);
}
