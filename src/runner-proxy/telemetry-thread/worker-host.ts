// The forwarding thread's side of the telemetry worker (docs/architecture.md#telemetry-thread):
// starts it, posts to it within a bound on bytes in flight, keeps the
// snapshots /healthz and /metrics are served from, restarts it with backoff
// when it dies, and stops it after forwarding has drained. Nothing here waits
// for the worker on the forwarding path: a post that cannot be made is
// dropped and counted, never queued without bound.
import { Worker } from 'node:worker_threads';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../log.js';
import type { ProxyConfig } from '../config/schema.js';
import type { TelemetryHealth } from '../telemetry-side.js';
import { encodeConfig } from './config-codec.js';
import type { FollowedJobs } from './followed-jobs.js';
import type { ExchangeMessage, FromWorker, MetricsJson, ToWorker, WorkerStart } from './messages.js';

// Under tap (and tsx) this module is TypeScript and so is its sibling; a
// worker inherits the parent's execArgv, so the same loader runs it. From
// dist/ both are .js.
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './telemetry-worker.ts' : './telemetry-worker.js', import.meta.url);

/** How long /metrics waits for the worker's figures before it serves the last ones. */
export const METRICS_WAIT_MS = 1000;
/** Stop: past shutdown.flush_timeout, this much more for the journal to close before the worker is terminated. */
const STOP_MARGIN_MS = 2000;
/**
 * Exchanges wait this long to go to the worker together: each message wakes the worker's thread, and on a
 * busy machine a wake-up costs the forwarding thread a context switch (docs/performance.md#telemetry-on-a-worker-thread).
 */
const BATCH_DELAY_MS = 5;
/** ...unless this many body bytes are waiting. */
const BATCH_MAX_BYTES = 1024 * 1024;
/** A worker that has not resumed its jobs by then is terminated (the first start fails; later ones restart). */
const START_TIMEOUT_MS = 60_000;
/** A worker that ran this long before it died starts its successor's backoff over. */
const STABLE_AFTER_MS = 60_000;

export type WorkerState = 'starting' | 'up' | 'down' | 'stopped';

export interface MetricsSnapshot {
  readonly json: MetricsJson;
  /** The CI/CD metrics' Prometheus text (docs/metrics.md#prometheus). */
  readonly text: string;
  /** When the worker answered, epoch ms. */
  readonly at: number;
}

export interface HealthSnapshot {
  readonly health: TelemetryHealth;
  readonly at: number;
}

export interface WorkerHostOptions {
  readonly config: ProxyConfig;
  readonly log: Logger;
  /** The forwarding thread's registry: the host's own counters go there. */
  readonly registry: Registry;
  readonly followed: FollowedJobs;
  /** Body bytes posted and not yet handled past which posts are dropped (limits.max_buffered_bytes). */
  readonly maxInFlightBytes: number;
  readonly restartBackoffMs?: { readonly initial: number; readonly max: number };
  /** How long a worker has to resume its jobs before it is terminated (default 60 s). */
  readonly startTimeoutMs?: number;
}

export class TelemetryWorkerHost {
  private worker?: Worker;
  private current: WorkerState = 'down';
  private posted = 0;
  private handled = 0;
  private readySince = 0;
  private failures = 0;
  private restartTimer?: NodeJS.Timeout;
  private nextId = 1;
  private readonly replies = new Map<number, (m: FromWorker | undefined) => void>();
  private readonly readyWaiters = new Set<() => void>();
  private healthSnapshot?: HealthSnapshot;
  private metricsSnapshot?: MetricsSnapshot;
  private stopping?: Promise<void>;
  /** Exchanges posted in this turn of the loop, sent as one message at its end. */
  private batch: ExchangeMessage[] = [];
  private batchTransfer: ArrayBuffer[] = [];
  private batchBytes = 0;
  private batchTimer?: NodeJS.Timeout;
  private readonly restarts: Counter;
  private readonly dropped: Counter<'reason'>;

  constructor(private readonly options: WorkerHostOptions) {
    this.restarts = new Counter({
      name: 'gitlab_otel_telemetry_worker_restarts_total',
      help: 'Telemetry worker restarts after it died (telemetry.thread: worker)',
      registers: [options.registry],
    });
    this.dropped = new Counter({
      name: 'gitlab_otel_telemetry_worker_dropped_total',
      help: 'Observed exchanges not handed to the telemetry worker, by reason (worker_down, buffered_bytes)',
      labelNames: ['reason'],
      registers: [options.registry],
    });
  }

  get state(): WorkerState {
    return this.current;
  }

  /** Body bytes posted to the worker and not yet handled by it. */
  get inFlightBytes(): number {
    return Math.max(0, this.posted - this.handled);
  }

  get health(): HealthSnapshot | undefined {
    return this.healthSnapshot;
  }

  /** The first start: resolves once the worker has resumed its jobs, rejects if it cannot start. */
  async start(): Promise<void> {
    const outcome = await this.spawn('first');
    if (outcome !== 'ready') throw new Error(`telemetry worker did not start: ${outcome}`);
  }

  /**
   * Hands a message to the worker, or drops it (counted) when the worker is
   * down or `bytes` more would pass the bound on bytes in flight.
   */
  post(message: ExchangeMessage, transfer: ArrayBuffer[] = [], bytes = 0): boolean {
    const worker = this.worker;
    if (!worker || this.current === 'down' || this.current === 'stopped') {
      this.dropped.inc({ reason: 'worker_down' });
      return false;
    }
    if (bytes > 0 && this.inFlightBytes + bytes > this.options.maxInFlightBytes) {
      this.dropped.inc({ reason: 'buffered_bytes' });
      return false;
    }
    this.posted += bytes;
    this.batch.push(message);
    for (const buffer of transfer) this.batchTransfer.push(buffer);
    this.batchBytes += bytes;
    if (this.batchBytes >= BATCH_MAX_BYTES) this.sendBatch();
    else this.batchTimer ??= setTimeout(() => this.sendBatch(), BATCH_DELAY_MS);
    return true;
  }

  /** Sends what is waiting; before any other message, so the worker sees everything in order. */
  private sendBatch(): void {
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    const transfer = this.batchTransfer;
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    this.batch = [];
    this.batchTransfer = [];
    this.batchBytes = 0;
    this.batchBytes = 0;
    this.worker?.postMessage({ type: 'exchanges', batch } satisfies ToWorker, transfer);
  }

  /** The worker's metrics now, or after `waitMs` the last ones it sent (undefined: none yet). */
  async metrics(waitMs = METRICS_WAIT_MS): Promise<MetricsSnapshot | undefined> {
    if (this.current === 'up') {
      const reply = await this.request((id) => ({ type: 'metrics', id }), waitMs);
      if (reply?.type === 'metrics') this.metricsSnapshot = { json: reply.json, text: reply.text, at: Date.now() };
    }
    return this.metricsSnapshot;
  }

  /** Asks the worker to flush its export queues within `timeoutMs`; resolves when it did, or gave up. */
  async flush(timeoutMs: number): Promise<void> {
    if (this.current !== 'up' && this.current !== 'starting') return;
    await this.request((id) => ({ type: 'flush', id, timeoutMs }), timeoutMs + STOP_MARGIN_MS);
  }

  /** Resolves true once a worker is up (the next one, after a crash), false after `timeoutMs`. */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.current === 'up') return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.readyWaiters.delete(done);
        resolve(this.current === 'up');
      };
      const timer = setTimeout(done, timeoutMs);
      this.readyWaiters.add(done);
    });
  }

  /** Tests only: the worker dies if its environment allows it (GITLAB_OTEL_TEST_WORKER_CRASH=1). */
  testCrash(): void {
    this.sendBatch();
    this.worker?.postMessage({ type: 'test-crash' } satisfies ToWorker);
  }

  /**
   * After forwarding has drained: the worker journals or abandons its jobs,
   * flushes, runs the final metric export and closes the journal within
   * `flushTimeoutMs`; a worker still busy after that (and a margin) is terminated.
   */
  stop(flushTimeoutMs: number): Promise<void> {
    this.stopping ??= (async () => {
      clearTimeout(this.restartTimer);
      const worker = this.worker;
      const wasUp = this.current === 'up' || this.current === 'starting';
      this.current = 'stopped';
      if (!worker) return;
      if (wasUp) {
        const stopped = new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), flushTimeoutMs + STOP_MARGIN_MS);
          const onMessage = (m: FromWorker): void => {
            if (m.type !== 'stopped') return;
            clearTimeout(timer);
            resolve(true);
          };
          worker.on('message', onMessage);
          worker.once('exit', () => {
            clearTimeout(timer);
            resolve(true);
          });
        });
        this.sendBatch();
        worker.postMessage({ type: 'stop', flushTimeoutMs } satisfies ToWorker);
        if (!(await stopped)) {
          this.options.log('warn', 'telemetry worker did not stop within shutdown.flush_timeout; terminated', {
            code: 'TELEMETRY_WORKER_STOP_LATE',
          });
        }
      }
      await worker.terminate();
    })();
    return this.stopping;
  }

  /**
   * Resolves 'ready', or why the worker did not start. A first start that fails is not restarted: it fails the
   * proxy's start; a restart that fails is a death like any other, restarted with backoff
   * (docs/architecture.md#telemetry-thread).
   */
  private spawn(attempt: 'first' | 'restart'): Promise<string> {
    const { config, log } = this.options;
    const startTimeoutMs = this.options.startTimeoutMs ?? START_TIMEOUT_MS;
    this.current = 'starting';
    this.posted = 0;
    this.handled = 0;
    const worker = new Worker(WORKER_URL, { workerData: { config: encodeConfig(config) } satisfies WorkerStart });
    this.worker = worker;
    return new Promise((resolve) => {
      let settled = false;
      let wasReady = false;
      const settle = (outcome: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(startTimer);
        resolve(outcome);
      };
      const startTimer = setTimeout(() => {
        log('error', 'telemetry worker did not start in time; terminated', { code: 'TELEMETRY_WORKER_START_FAILED' });
        settle(`not ready within ${startTimeoutMs} ms`);
        void worker.terminate();
      }, startTimeoutMs);
      worker.on('message', (m: FromWorker) => {
        if (this.worker !== worker) return;
        if (m.type === 'ready') {
          wasReady = true;
          this.current = 'up';
          this.readySince = Date.now();
          this.options.followed.resumed(m.jobs);
          for (const w of [...this.readyWaiters]) w();
          settle('ready');
        } else if (m.type === 'failed') {
          log('error', `telemetry worker could not start: ${m.message}`, { code: 'TELEMETRY_WORKER_START_FAILED' });
          settle(m.message);
          void worker.terminate();
        } else {
          this.onMessage(m);
        }
      });
      worker.on('error', (err) => {
        log('error', `telemetry worker failed: ${err.message}`, { code: 'TELEMETRY_WORKER_FAILED' });
        settle(`failed: ${err.message}`);
      });
      worker.on('exit', (code) => {
        settle(`exited with code ${code}`);
        if (attempt === 'first' && !wasReady) this.forget(worker);
        else this.onExit(worker, code);
      });
    });
  }

  private onMessage(m: FromWorker): void {
    const { followed, log } = this.options;
    switch (m.type) {
      case 'log':
        log(m.level, m.msg, m.fields);
        return;
      case 'job-ended':
        followed.ended(m.jobId, m.jobSpanId);
        return;
      case 'token-learned':
        followed.tokenLearned(m.jobId, m.digest);
        return;
      case 'health':
        this.healthSnapshot = { health: m.health, at: Date.now() };
        return;
      case 'progress':
        this.handled = m.bytes;
        return;
      case 'metrics':
      case 'flushed':
        this.replies.get(m.id)?.(m);
        return;
      default:
        return;
    }
  }

  /** The worker is gone: what was posted to it and what waits for its answers goes with it. False: not the current worker. */
  private forget(worker: Worker): boolean {
    if (this.worker !== worker) return false;
    this.worker = undefined;
    this.posted = 0;
    this.handled = 0;
    // Accepted for the dead worker; its successor starts from the journal, not from these.
    this.batch = [];
    this.batchTransfer = [];
    for (const reply of [...this.replies.values()]) reply(undefined);
    if (this.current !== 'stopped') this.current = 'down';
    return true;
  }

  private onExit(worker: Worker, code: number): void {
    if (!this.forget(worker) || this.current === 'stopped') return;
    const { log, followed } = this.options;
    // The worker followed these jobs; its successor says which it resumed from the journal.
    followed.clear();
    if (this.readySince > 0 && Date.now() - this.readySince >= STABLE_AFTER_MS) this.failures = 0;
    this.readySince = 0;
    const { initial, max } = this.options.restartBackoffMs ?? { initial: 250, max: 30_000 };
    const delay = Math.min(max, initial * 2 ** this.failures);
    this.failures++;
    log('error', 'telemetry worker exited; forwarding goes on, telemetry restarts', {
      code: 'TELEMETRY_WORKER_EXITED',
      exit_code: code,
      restart_in_ms: delay,
    });
    this.restartTimer = setTimeout(() => {
      if (this.current === 'stopped') return;
      this.restarts.inc();
      void this.spawn('restart');
    }, delay);
    this.restartTimer.unref();
  }

  private request(make: (id: number) => ToWorker, timeoutMs: number): Promise<FromWorker | undefined> {
    const worker = this.worker;
    if (!worker) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), timeoutMs);
      const done = (m: FromWorker | undefined): void => {
        clearTimeout(timer);
        this.replies.delete(id);
        resolve(m);
      };
      this.replies.set(id, done);
      this.sendBatch();
      worker.postMessage(make(id));
    });
  }
}
