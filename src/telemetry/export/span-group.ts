// A submitted group of spans (one job's spans for one resource). Where its
// encoding is reused (a spool, several endpoints) it is serialised once to OTLP
// protobuf (span-encoder.ts) and those bytes are shared by the
// endpoints, the spool and the batches; otherwise it waits as span records for
// its batch's serialisation (docs/export.md#encode-once). A batch body is the
// concatenation of its groups' encodings: a protobuf parser merges
// repeated fields sent in pieces, so concatenated ExportTraceServiceRequests
// are one request whose resource_spans are all of theirs.
import type { Resource } from '@opentelemetry/resources';
import type { SpanRecord } from '../spans.js';
import { encodeResourceSpans, encodeSpanRecords, type ResourceRecords } from './span-encoder.js';

/** Spans encoded as one ExportTraceServiceRequest. */
export interface EncodedSpans {
  readonly body: Buffer;
  /** How many spans `body` holds: every count (queue bound, metrics, drops) is in spans. */
  readonly spans: number;
}

/**
 * A piece of a group as an endpoint queues it: encoded, or still span records
 * serialised with the rest of their batch (docs/export.md#encode-once says when
 * each). `bytes` is what it counts against the queue's byte bound: the encoded
 * size, or the records' estimate.
 */
export type GroupPiece = { readonly spans: number; readonly bytes: number } & QueuedSpans;
export type QueuedSpans = { readonly body: Buffer } | { readonly records: readonly SpanRecord[]; readonly resource: Resource };

export function encodeSpans(spans: readonly SpanRecord[], resource: Resource): EncodedSpans {
  return { body: encodeSpanRecords(spans, resource), spans: spans.length };
}

/**
 * One body for a batch: the encoded pieces back to back, then the record
 * pieces encoded together in one call (one ResourceSpans per resource).
 */
export function batchBody(items: readonly QueuedSpans[]): Buffer {
  const parts: Buffer[] = [];
  const records: ResourceRecords[] = [];
  for (const i of items) {
    if ('body' in i) parts.push(i.body);
    else records.push(i);
  }
  if (records.length > 0) parts.push(encodeResourceSpans(records));
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** A cheap upper-bound estimate of a span's encoded size, for the byte bound of records not yet encoded. */
export function estimateSpanBytes(span: SpanRecord): number {
  let n = 96 + span.name.length;
  // for-in, not Object.entries: no pair array per span on the submit path (half the time; docs/export.md#performance).
  const attributes = span.attributes;
  for (const k in attributes) {
    const v = attributes[k];
    n += k.length + 8;
    if (typeof v === 'string') n += v.length;
    else if (Array.isArray(v)) for (const x of v as unknown[]) n += typeof x === 'string' ? x.length + 2 : 9;
    else n += 9;
  }
  return n + (span.status.message?.length ?? 0);
}

/**
 * A group as submitted, cut into pieces of at most an endpoint's batch size.
 * Encoded lazily (an endpoint that refuses the group costs no encoding), each
 * piece size encoded once however many endpoints ask for it.
 */
export class SpanGroup {
  /** Encoded chunks by chunk size: made on first use (most groups go to one endpoint without a spool, and are never encoded here). */
  private encoded?: Map<number, EncodedSpans[]>;
  private estimates?: number[];

  constructor(
    readonly spans: readonly SpanRecord[],
    readonly resource: Resource,
  ) {}

  get size(): number {
    return this.spans.length;
  }

  /** The group in pieces of at most `max` spans, in order, encoded or not. Throws if the encoder does. */
  pieces(max: number, encode: boolean): GroupPiece[] {
    const n = this.spans.length;
    // One piece whatever `max` is, when the group fits: endpoints with different batch sizes share it.
    const size = n <= max ? n : Math.max(1, max);
    if (encode) return this.chunks(size).map((c) => ({ body: c.body, spans: c.spans, bytes: c.body.length }));
    if (size === n) {
      // The common case: the whole group, estimated without keeping the per-span figures.
      let bytes = 0;
      for (const span of this.spans) bytes += estimateSpanBytes(span);
      return [{ records: this.spans, resource: this.resource, spans: n, bytes }];
    }
    const out: GroupPiece[] = [];
    for (let i = 0; i < n; i += size) out.push(this.records(i, Math.min(size, n - i)));
    return out;
  }

  /** Encoded chunks of `size` spans, memoised. */
  chunks(size: number): EncodedSpans[] {
    this.encoded ??= new Map();
    let out = this.encoded.get(size);
    if (!out) {
      out = [];
      for (let i = 0; i < this.spans.length; i += size) out.push(encodeSpans(this.spans.slice(i, i + size), this.resource));
      this.encoded.set(size, out);
    }
    return out;
  }

  /**
   * The longest run of spans from `start`, at most `max`, that fits in `room`
   * bytes: for the queue's last room when a whole piece does not fit. Rare.
   */
  prefix(start: number, max: number, room: number, encode: boolean): GroupPiece | undefined {
    if (!encode) {
      const est = this.spanEstimates();
      let n = 0;
      let bytes = 0;
      while (n < max && bytes + est[start + n]! <= room) bytes += est[start + n++]!;
      return n > 0 ? this.records(start, n) : undefined;
    }
    let n = max;
    while (n > 0) {
      const { body } = encodeSpans(this.spans.slice(start, start + n), this.resource);
      if (body.length <= room) return { body, spans: n, bytes: body.length };
      // Shrink in proportion to the overshoot (at least by one span).
      n = Math.min(n - 1, Math.floor((n * room) / body.length));
    }
    return undefined;
  }

  private records(start: number, n: number): GroupPiece {
    const est = this.spanEstimates();
    let bytes = 0;
    for (let i = start; i < start + n; i++) bytes += est[i]!;
    const records = start === 0 && n === this.spans.length ? this.spans : this.spans.slice(start, start + n);
    return { records, resource: this.resource, spans: n, bytes };
  }

  private spanEstimates(): number[] {
    this.estimates ??= this.spans.map(estimateSpanBytes);
    return this.estimates;
  }
}
