// One endpoint's bounded queue. Bounded by span count and estimated bytes,
// counting spans in flight too, so memory stays within the configured bound
// however long the collector is away. New spans that do not fit are refused
// (the caller counts them); spans past max_age are taken out for dropping.
import type { Resource } from '@opentelemetry/resources';
import type { SpanRecord } from '../spans.js';
import type { SpoolTicket } from './span-spool.js';

export interface QueueItem {
  readonly span: SpanRecord;
  readonly resource: Resource;
  /** ms since epoch when first submitted (kept across a restart). */
  readonly enqueuedAt: number;
  readonly bytes: number;
  readonly ticket?: SpoolTicket;
  /** False until the spool has the span on disk; only durable spans are exported. */
  durable: boolean;
}

/** A cheap upper-bound estimate of a span's encoded size, for the byte bound. */
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

export class SpanQueue {
  private items: QueueItem[] = [];
  private head = 0;
  private inflightSpans = 0;
  private inflightBytes = 0;
  private queuedBytes = 0;

  constructor(private readonly limits: { maxSpans: number; maxBytes: number }) {}

  /** Spans queued plus in flight. */
  get spans(): number {
    return this.items.length - this.head + this.inflightSpans;
  }
  get bytes(): number {
    return this.queuedBytes + this.inflightBytes;
  }
  get queued(): number {
    return this.items.length - this.head;
  }
  /** Durable spans waiting at the front. */
  readyCount(limit: number): number {
    let n = 0;
    for (let i = this.head; i < this.items.length && n < limit && this.items[i]!.durable; i++) n++;
    return n;
  }
  oldestQueuedAt(): number | undefined {
    return this.items[this.head]?.enqueuedAt;
  }

  /** Whether one more span of `bytes` fits. */
  fits(bytes: number): boolean {
    return this.spans + 1 <= this.limits.maxSpans && this.bytes + bytes <= this.limits.maxBytes;
  }

  push(item: QueueItem): void {
    this.items.push(item);
    this.queuedBytes += item.bytes;
  }

  /** Removes and returns queued spans older than `maxAgeMs`. */
  expire(now: number, maxAgeMs: number): QueueItem[] {
    const expired: QueueItem[] = [];
    while (this.head < this.items.length && now - this.items[this.head]!.enqueuedAt > maxAgeMs) {
      expired.push(this.items[this.head++]!);
    }
    this.reclaim(expired);
    return expired;
  }

  /** Takes up to `max` durable spans from the front; they count as in flight until `release`. */
  take(max: number): QueueItem[] {
    const n = this.readyCount(max);
    const batch = this.items.slice(this.head, this.head + n);
    this.head += n;
    this.reclaim(batch);
    for (const i of batch) {
      this.inflightSpans++;
      this.inflightBytes += i.bytes;
    }
    return batch;
  }

  release(batch: readonly QueueItem[]): void {
    for (const i of batch) {
      this.inflightSpans--;
      this.inflightBytes -= i.bytes;
    }
  }

  /** Removes queued spans matching `pred` (e.g. those of an evicted spool segment). */
  removeWhere(pred: (item: QueueItem) => boolean): QueueItem[] {
    const removed: QueueItem[] = [];
    const kept: QueueItem[] = [];
    for (let i = this.head; i < this.items.length; i++) (pred(this.items[i]!) ? removed : kept).push(this.items[i]!);
    this.items = kept;
    this.head = 0;
    this.reclaim(removed);
    return removed;
  }

  /** Everything still queued (not in flight), emptying the queue. */
  drain(): QueueItem[] {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    this.reclaim(rest);
    return rest;
  }

  private reclaim(removed: readonly QueueItem[]): void {
    for (const i of removed) this.queuedBytes -= i.bytes;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
