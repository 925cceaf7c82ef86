// One endpoint's bounded queue of span groups. Bounded by span count and
// bytes (encoded size, or an estimate for groups kept as records), counting
// groups in flight too, so memory stays within the configured bound however
// long the collector is away. New groups that do not fit are refused (the
// caller counts their spans); groups past max_age are taken out for dropping.
// Items are groups (docs/export.md#encode-once); every count is in spans.
import type { GroupPiece } from './span-group.js';
import type { SpoolTicket } from './span-spool.js';

/** A group (or a piece of one, at most batch_size spans), encoded or still records. */
export type QueueItem = GroupPiece & {
  /** ms since epoch when first submitted (kept across a restart). */
  readonly enqueuedAt: number;
  readonly ticket?: SpoolTicket;
  /** False until the spool has the group on disk; only durable groups are exported. */
  durable: boolean;
};

/** What `take(limit)` would return now: its spans, and whether the batch is as full as it can get. */
export interface Ready {
  readonly spans: number;
  /** The limit is reached, or the next durable group would pass it: waiting cannot make this batch larger. */
  readonly full: boolean;
}

export const spanCount = (items: readonly { readonly spans: number }[]): number => {
  let n = 0;
  for (const i of items) n += i.spans;
  return n;
};

export class SpanQueue {
  private items: QueueItem[] = [];
  private head = 0;
  private queuedSpans = 0;
  private queuedBytes = 0;
  private inflightSpans = 0;
  private inflightBytes = 0;

  constructor(private readonly limits: { maxSpans: number; maxBytes: number }) {}

  /** Spans queued plus in flight. */
  get spans(): number {
    return this.queuedSpans + this.inflightSpans;
  }
  /** Bytes queued plus in flight. */
  get bytes(): number {
    return this.queuedBytes + this.inflightBytes;
  }
  /** Spans queued (not in flight). */
  get queued(): number {
    return this.queuedSpans;
  }

  /**
   * Durable groups at the front, up to `limit` spans. The first group is
   * taken even when larger than the limit (a group spooled under a larger
   * batch size), so nothing is stuck.
   */
  ready(limit: number): Ready {
    let n = 0;
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i]!;
      if (!item.durable) return { spans: n, full: n >= limit };
      if (n > 0 && n + item.spans > limit) return { spans: n, full: true };
      n += item.spans;
      if (n >= limit) return { spans: n, full: true };
    }
    return { spans: n, full: false };
  }

  oldestQueuedAt(): number | undefined {
    return this.items[this.head]?.enqueuedAt;
  }

  /** Whether a group of `spans` spans and `bytes` bytes fits. */
  fits(spans: number, bytes: number): boolean {
    return this.spans + spans <= this.limits.maxSpans && this.bytes + bytes <= this.limits.maxBytes;
  }

  /** Room left: spans and bytes. */
  room(): { spans: number; bytes: number } {
    return { spans: this.limits.maxSpans - this.spans, bytes: this.limits.maxBytes - this.bytes };
  }

  push(item: QueueItem): void {
    this.items.push(item);
    this.queuedSpans += item.spans;
    this.queuedBytes += item.bytes;
  }

  /** Removes and returns queued groups older than `maxAgeMs`. */
  expire(now: number, maxAgeMs: number): QueueItem[] {
    const expired: QueueItem[] = [];
    while (this.head < this.items.length && now - this.items[this.head]!.enqueuedAt > maxAgeMs) {
      expired.push(this.items[this.head++]!);
    }
    this.reclaim(expired);
    return expired;
  }

  /** Takes durable groups from the front, up to `limit` spans (see `ready`); they count as in flight until `release`. */
  take(limit: number): QueueItem[] {
    const want = this.ready(limit).spans;
    const batch: QueueItem[] = [];
    let n = 0;
    while (n < want) {
      const item = this.items[this.head++]!;
      batch.push(item);
      n += item.spans;
    }
    this.reclaim(batch);
    for (const i of batch) {
      this.inflightSpans += i.spans;
      this.inflightBytes += i.bytes;
    }
    return batch;
  }

  release(batch: readonly QueueItem[]): void {
    for (const i of batch) {
      this.inflightSpans -= i.spans;
      this.inflightBytes -= i.bytes;
    }
  }

  /** Removes queued groups matching `pred` (e.g. those of an evicted spool segment). */
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
    for (const i of removed) {
      this.queuedSpans -= i.spans;
      this.queuedBytes -= i.bytes;
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
