// One collector endpoint: its own bounded queue, batching, export concurrency
// limit and retry loop, so a slow or dead collector never delays another
// (unlike the runner's one queue for all endpoints). Failures change state,
// are logged once per change and counted; they never reach the caller.
import pRetry, { AbortError } from 'p-retry';
import type { Resource } from '@opentelemetry/resources';
import type { Logger } from '../../log.js';
import type { SpanRecord } from '../spans.js';
import { EndpointConfigError } from '../auth/channel.js';
import type { TokenSource } from '../auth/token.js';
import type { EndpointSettings } from './settings.js';
import { countDropped, type DropReason, type ExportMetrics } from './export-metrics.js';
import { createTransport, type ExportFailure, type OtlpTransport } from './otlp-client.js';
import { decideFailure } from './retry-policy.js';
import { batchBody, SpanGroup, type GroupPiece } from './span-group.js';
import { spanCount, SpanQueue, type QueueItem } from './span-queue.js';
import { SpanSpool, spoolDirFor, writeEndpointRecord, type SpoolBudget } from './span-spool.js';

export type EndpointState = 'starting' | 'up' | 'failing' | 'invalid';

export interface EndpointHealth {
  readonly name: string;
  readonly url: string;
  readonly state: EndpointState;
  readonly queueSpans: number;
  readonly queueBytes: number;
  readonly consecutiveFailures: number;
  /** A gRPC status name or an error code; never a message from the wire. */
  readonly lastError?: string;
  readonly lastSuccessAt?: number;
}

export interface EndpointDeps {
  metrics: ExportMetrics;
  /** Messages are stable event names (`endpoint_state`, `spool_replayed`…); never a token or span content. */
  log: Logger;
  spool?: { dir: string; budget: SpoolBudget };
  /** Replaces the token source built from settings (tests, or a pre-warmed one). */
  tokenSource?: TokenSource;
}

class RetryableFailure extends Error {
  constructor(
    readonly outcome: ExportFailure,
    readonly minDelayMs: number,
  ) {
    super(outcome.message);
  }
}
class Reauthenticate extends Error {}
class Dropped extends Error {
  constructor(
    readonly reason: DropReason,
    readonly code: string,
  ) {
    super(reason);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const aborted = (): Error => (signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) return reject(aborted());
    const onAbort = (): void => {
      clearTimeout(t);
      reject(aborted());
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export class EndpointExporter {
  readonly name: string;
  private state: EndpointState = 'starting';
  private readonly queue: SpanQueue;
  private client?: OtlpTransport;
  private spool?: SpanSpool;
  spoolDir?: string;
  private inflight = new Set<Promise<void>>();
  private timer?: NodeJS.Timeout;
  /** A pump is due on the next turn and will batch (or time) whatever is queued: submits until then queue no other. */
  private pumpDue = false;
  private flushing = false;
  private closed = false;
  private readonly abort = new AbortController();
  private idleWaiters: (() => void)[] = [];
  private consecutiveFailures = 0;
  private lastError?: string;
  private lastSuccessAt?: number;
  private readonly labels: { endpoint: string };

  private constructor(
    readonly settings: EndpointSettings,
    private readonly deps: EndpointDeps,
  ) {
    this.name = settings.name;
    this.labels = { endpoint: settings.name };
    this.queue = new SpanQueue(settings.queue);
    const m = deps.metrics;
    try {
      // OTLP/gRPC or OTLP/HTTP by settings.protocol (docs/export.md#transports).
      this.client = createTransport(
        settings,
        { onRefresh: () => m.tokenRefreshes.inc(this.labels), onFailure: (e) => this.tokenFailed(e.code) },
        deps.tokenSource,
      );
    } catch (err) {
      this.state = 'invalid';
      this.lastError = err instanceof EndpointConfigError ? err.code : 'INVALID_ENDPOINT';
      deps.log('warn', 'endpoint_invalid', { endpoint: this.name, code: this.lastError, message: (err as Error).message });
    }
  }

  /** Builds the endpoint and replays what its spool still holds. Never throws. */
  static create(settings: EndpointSettings, deps: EndpointDeps): EndpointExporter {
    const e = new EndpointExporter(settings, deps);
    if (deps.spool && e.state !== 'invalid') {
      try {
        const { spool, replay } = SpanSpool.open(spoolDirFor(deps.spool.dir, settings), deps.spool.budget, {
          onWarning: (w) => {
            deps.metrics.spoolCorrupt.inc({ file: 'spool' }, w.corrupt + (w.torn ? 1 : 0));
            deps.log('warn', w.event, { endpoint: e.name, file: w.file, corrupt: w.corrupt, torn: w.torn });
          },
          onEvict: (ids) => e.evicted(new Set(ids)),
        });
        e.spool = spool;
        e.spoolDir = spool.dir;
        // Its name only: what the next process does with these spans is counted under it (docs/security.md#removed-endpoints).
        writeEndpointRecord(spool.dir, settings);
        let replayed = 0;
        for (const g of replay) {
          // Spooled bytes are the wire body: replay is a read, nothing is decoded or encoded again.
          if (!e.queue.fits(g.spans, g.body.length)) {
            e.drop('queue_full', g.spans);
            g.ticket.settle(g.spans);
            continue;
          }
          e.queue.push({ body: g.body, spans: g.spans, bytes: g.body.length, enqueuedAt: g.enqueuedAt, ticket: g.ticket, durable: true });
          replayed += g.spans;
        }
        if (replayed > 0) {
          deps.log('info', 'spool_replayed', { endpoint: e.name, spans: replayed });
          deps.metrics.enqueued.inc(e.labels, replayed);
          e.schedule();
        }
      } catch (err) {
        deps.log('warn', 'spool_unavailable', { endpoint: e.name, code: (err as NodeJS.ErrnoException).code ?? 'error' });
      }
    }
    e.updateGauges();
    return e;
  }

  health(): EndpointHealth {
    let url = this.settings.url;
    try {
      const u = new URL(url);
      url = `${u.protocol}//${u.host}`;
    } catch {
      url = '(invalid)';
    }
    return {
      name: this.name,
      url,
      state: this.state,
      queueSpans: this.queue.spans,
      queueBytes: this.queue.bytes,
      consecutiveFailures: this.consecutiveFailures,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      ...(this.lastSuccessAt ? { lastSuccessAt: this.lastSuccessAt } : {}),
    };
  }

  /** Queues spans for export. Synchronous, never throws; what does not fit is counted. */
  submit(spans: readonly SpanRecord[], resource: Resource): void {
    this.submitGroup(new SpanGroup(spans, resource));
  }

  /**
   * Queues a group, encoded once for every endpoint it goes to (the pipeline
   * shares one SpanGroup between them; docs/export.md#encode-once). Chunks of
   * at most batch_size spans; what does not fit is counted, in spans.
   */
  submitGroup(group: SpanGroup, shared = false): void {
    if (group.size === 0) return;
    if (this.state === 'invalid') return this.drop('endpoint_invalid', group.size);
    if (this.closed) return this.drop('shutdown', group.size);
    // Encoded now when the encoding is used more than once: by the spool and by other endpoints.
    // Otherwise the spans wait as records and are serialised with their batch, one call for up to
    // batch_size spans, which costs less than one call per group (docs/export.md#encode-once).
    const encode = !!this.spool || shared;
    let pieces: GroupPiece[];
    try {
      pieces = group.pieces(this.settings.queue.batchSize, encode);
    } catch {
      // The serializer refused these spans: no collector would take them either.
      return this.drop('rejected', group.size);
    }
    const accepted: GroupPiece[] = [];
    let spans = 0;
    let bytes = 0;
    for (const piece of pieces) {
      if (this.queue.fits(spans + piece.spans, bytes + piece.bytes)) {
        accepted.push(piece);
        spans += piece.spans;
        bytes += piece.bytes;
        continue;
      }
      // The first piece that does not fit: as many of its spans as the room left holds.
      const room = this.queue.room();
      let prefix: GroupPiece | undefined;
      try {
        prefix = group.prefix(spans, Math.min(piece.spans, room.spans - spans), room.bytes - bytes, encode);
      } catch {
        prefix = undefined;
      }
      if (prefix) {
        accepted.push(prefix);
        spans += prefix.spans;
      }
      break;
    }
    if (spans < group.size) this.drop('queue_full', group.size - spans);
    if (accepted.length === 0) return;
    const now = Date.now();
    for (const piece of accepted) {
      if (this.spool && 'body' in piece) {
        const { ticket, written } = this.spool.append(piece, now);
        const item: QueueItem = { body: piece.body, spans: piece.spans, bytes: piece.bytes, enqueuedAt: now, ticket, durable: false };
        void written.then(() => {
          item.durable = true;
          this.schedule();
        });
        this.queue.push(item);
      } else {
        this.queue.push(
          'body' in piece
            ? { body: piece.body, spans: piece.spans, bytes: piece.bytes, enqueuedAt: now, durable: true }
            : { records: piece.records, resource: piece.resource, spans: piece.spans, bytes: piece.bytes, enqueuedAt: now, durable: true },
        );
      }
    }
    this.deps.metrics.enqueued.inc(this.labels, spans);
    this.updateGauges();
    this.schedule();
  }

  /** Sends everything now; resolves when the queue is empty or `timeoutMs` passed. */
  async flush(timeoutMs: number): Promise<void> {
    if (this.state === 'invalid') return;
    this.flushing = true;
    try {
      this.pump();
      await this.idle(timeoutMs);
    } finally {
      this.flushing = false;
    }
  }

  /** Unsent spans stay in the spool (or are counted as dropped). */
  private shutdownDone?: Promise<void>;

  /** Flush within the bound; then stop. Idempotent. */
  shutdown(timeoutMs: number): Promise<void> {
    this.shutdownDone ??= this.stop(timeoutMs);
    return this.shutdownDone;
  }

  private async stop(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.closed = true;
    await this.flush(timeoutMs);
    this.abort.abort(new Error('endpoint shut down'));
    if (this.timer) clearTimeout(this.timer);
    if (this.inflight.size > 0) {
      await Promise.race([
        Promise.allSettled([...this.inflight]),
        new Promise((r) => setTimeout(r, Math.max(10, deadline - Date.now())).unref()),
      ]);
    }
    const rest = spanCount(this.queue.drain());
    if (!this.spool) this.drop('shutdown', rest);
    else if (rest > 0) this.deps.log('info', 'spooled_for_restart', { endpoint: this.name, spans: rest + this.queue.spans });
    this.updateGauges();
    await this.spool?.close();
    this.client?.close();
  }

  private evicted(ids: Set<number>): void {
    const removed = this.queue.removeWhere((i) => i.ticket !== undefined && ids.has(i.ticket.id));
    if (removed.length > 0) this.drop('spool_full', spanCount(removed));
    this.updateGauges();
  }

  private drop(reason: DropReason, n: number): void {
    countDropped(this.deps.metrics.dropped, this.name, reason, n);
  }

  private settle(batch: readonly QueueItem[]): void {
    for (const i of batch) i.ticket?.settle(i.spans);
  }

  private schedule(): void {
    if ((this.closed && !this.flushing) || this.pumpDue) return;
    const ready = this.queue.ready(this.settings.queue.batchSize);
    if (ready.full || this.flushing) {
      this.pumpDue = true;
      setImmediate(() => {
        this.pumpDue = false;
        this.pump();
      });
    } else if (ready.spans > 0 && !this.timer) {
      this.timer = setTimeout(() => this.pump(), this.settings.queue.batchDelayMs);
      this.timer.unref();
    }
  }

  private pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (!this.client || this.abort.signal.aborted) return;
    const now = Date.now();
    const expired = this.queue.expire(now, this.settings.queue.maxAgeMs);
    if (expired.length > 0) {
      this.drop('max_age', spanCount(expired));
      this.settle(expired);
    }
    const { batchSize, batchDelayMs, maxConcurrentExports } = this.settings.queue;
    while (this.inflight.size < maxConcurrentExports) {
      const ready = this.queue.ready(batchSize);
      if (ready.spans === 0) break;
      const oldest = this.queue.oldestQueuedAt() ?? now;
      if (!ready.full && !this.flushing && now - oldest < batchDelayMs) {
        this.timer = setTimeout(() => this.pump(), batchDelayMs - (now - oldest));
        this.timer.unref();
        break;
      }
      const batch = this.queue.take(batchSize);
      const p: Promise<void> = this.send(batch).finally(() => {
        this.inflight.delete(p);
        this.queue.release(batch);
        this.updateGauges();
        this.pump();
      });
      this.inflight.add(p);
    }
    this.updateGauges();
    if (this.queue.spans === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
    // Spans still queued but not ready wait for their spool write: `submit` reschedules when it lands.
  }

  private idle(timeoutMs: number): Promise<void> {
    if (this.queue.spans === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve();
      }, timeoutMs);
      t.unref();
      this.idleWaiters.push(done);
    });
  }

  private async send(batch: QueueItem[]): Promise<void> {
    const client = this.client!;
    const m = this.deps.metrics;
    const spans = spanCount(batch);
    let body: Buffer;
    try {
      // The groups' encodings back to back are one ExportTraceServiceRequest (docs/export.md#encode-once).
      body = batchBody(batch);
    } catch {
      this.drop('rejected', spans);
      this.settle(batch);
      return;
    }
    let oldest = Number.POSITIVE_INFINITY;
    for (const i of batch) oldest = Math.min(oldest, i.enqueuedAt);
    const budget = Math.max(0, this.settings.queue.maxAgeMs - (Date.now() - oldest));
    let reauthenticated = false;
    try {
      const outcome = await pRetry(
        async (attempt) => {
          if (attempt > 1) m.retried.inc(this.labels, spans);
          const stop = m.exportSeconds.startTimer(this.labels);
          const r = await client.export(body, this.settings.timeoutMs);
          stop({ outcome: r.kind === 'error' ? r.code : r.kind });
          if (r.kind !== 'error') return r;
          const d = decideFailure(r.failure, r.retryDelayMs, reauthenticated);
          if (d.action === 'reauthenticate') {
            reauthenticated = true;
            client.invalidateToken();
            throw new Reauthenticate('UNAUTHENTICATED');
          }
          if (d.action === 'drop') {
            throw new AbortError(new Dropped(r.failure === 'unauthenticated' ? 'unauthenticated' : 'rejected', r.code));
          }
          throw new RetryableFailure(r, d.minDelayMs);
        },
        {
          retries: Number.POSITIVE_INFINITY,
          factor: 2,
          minTimeout: this.settings.retry.initialBackoffMs,
          maxTimeout: this.settings.retry.maxBackoffMs,
          randomize: true,
          maxRetryTime: budget,
          signal: this.abort.signal,
          onFailedAttempt: ({ error }) => {
            if (error instanceof RetryableFailure) this.failing(error.outcome.code);
          },
          shouldConsumeRetry: ({ error }) => !(error instanceof Reauthenticate),
          shouldRetry: async ({ error }) => {
            // RetryInfo / Retry-After: wait at least what the collector asked for, then back off as usual; but not past
            // the batch's max_age, which would hold an export slot for nothing (docs/export.md#retry).
            if (error instanceof RetryableFailure && error.minDelayMs > 0) {
              const left = this.settings.queue.maxAgeMs - (Date.now() - oldest);
              if (error.minDelayMs > left) return false;
              await sleep(error.minDelayMs, this.abort.signal);
            }
            return true;
          },
        },
      );
      this.up();
      const rejected = outcome.kind === 'partial' ? Math.min(outcome.rejectedSpans, spans) : 0;
      m.exported.inc(this.labels, spans - rejected);
      if (rejected > 0) {
        this.drop('partial_success', rejected);
        this.deps.log('warn', 'partial_success', { endpoint: this.name, rejected });
      }
      this.settle(batch);
    } catch (err) {
      if (this.abort.signal.aborted) {
        // Shutting down: with a spool the batch stays unacknowledged and is replayed on restart.
        if (!this.spool) this.drop('shutdown', spans);
        return;
      }
      if (err instanceof Dropped) {
        this.failing(err.code);
        this.drop(err.reason, spans);
      } else if (err instanceof Reauthenticate) {
        this.drop('unauthenticated', spans);
      } else {
        this.drop('max_age', spans);
      }
      this.settle(batch);
    }
  }

  private up(): void {
    this.consecutiveFailures = 0;
    this.lastSuccessAt = Date.now();
    this.deps.metrics.endpointUp.set(this.labels, 1);
    if (this.state !== 'up') {
      this.deps.log('info', 'endpoint_state', { endpoint: this.name, from: this.state, to: 'up' });
      this.state = 'up';
    }
  }

  private failing(code: string): void {
    this.consecutiveFailures++;
    this.lastError = code;
    this.deps.metrics.endpointUp.set(this.labels, 0);
    if (this.state !== 'failing' && this.state !== 'invalid') {
      this.deps.log('warn', 'endpoint_state', { endpoint: this.name, from: this.state, to: 'failing', reason: code });
      this.state = 'failing';
    }
  }

  private tokenFailed(code: string): void {
    this.deps.metrics.tokenFailures.inc(this.labels);
    this.failing(code);
  }

  private updateGauges(): void {
    this.deps.metrics.queueSpans.set(this.labels, this.queue.spans);
    this.deps.metrics.queueBytes.set(this.labels, this.queue.bytes);
  }
}
