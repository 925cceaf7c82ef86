// The telemetry worker's entry (docs/architecture.md#telemetry-thread): the
// telemetry side (telemetry-side.ts: tracker, journal, export, CI/CD
// metrics) with its own metrics registry, fed by the messages the forwarding
// thread posts. It logs by posting lines to the forwarding thread's logger,
// posts its health every second and when jobs start or end, and answers
// requests for its metrics and for a flush. On 'stop' it does what the
// in-process proxy does after forwarding has drained, then says 'stopped'.
import { parentPort, workerData } from 'node:worker_threads';
import { Registry } from 'prom-client';
import type { LogLevel, Logger } from '../../log.js';
import type { ExchangeMessage, FromWorker, ToWorker, WorkerStart } from './messages.js';
import { decodeConfig } from './config-codec.js';
import { createProxyMetrics } from '../metrics.js';
import { payloadEgress } from '../payload-egress.js';
import { startTelemetrySide, type TelemetrySide } from '../telemetry-side.js';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const HEALTH_INTERVAL_MS = 1000;

/** Set only by tests: lets a 'test-crash' message kill the worker (never reachable from a job: only the proxy posts here). */
const TEST_CRASH_ENV = 'GITLAB_OTEL_TEST_WORKER_CRASH';
/**
 * Set only by tests, read once at start: `report` makes this start fail as an unusable telemetry side does (the
 * worker says 'failed'), `throw` makes the worker die before it is ready, as a broken install would, `hang` keeps it
 * from ever being ready (docs/architecture.md#telemetry-thread).
 */
const TEST_START_FAIL_ENV = 'GITLAB_OTEL_TEST_WORKER_START_FAIL';
/**
 * Set only by tests, read once at start: the worker answers this many metrics requests and leaves every later one
 * unanswered, so /metrics serves its last snapshot (docs/architecture.md#telemetry-thread).
 */
const TEST_METRICS_STALL_AFTER_ENV = 'GITLAB_OTEL_TEST_WORKER_METRICS_STALL_AFTER';

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('telemetry-worker.ts runs as a worker thread only');
  const testStartFail = process.env[TEST_START_FAIL_ENV];
  if (testStartFail === 'throw') throw new Error('telemetry worker start failure requested by a test');
  if (testStartFail === 'hang') {
    // Alive and silent until the host's start timeout terminates it.
    setInterval(() => undefined, 60_000);
    return;
  }
  const stallAfter = process.env[TEST_METRICS_STALL_AFTER_ENV];
  let metricsAnswersLeft = stallAfter === undefined ? Infinity : Number(stallAfter);
  const post = (m: FromWorker): void => port.postMessage(m);
  const config = decodeConfig((workerData as WorkerStart).config);
  const minLevel = ORDER[config.logLevel];
  const log: Logger = (level, msg, fields) => {
    if (ORDER[level] >= minLevel) post({ type: 'log', level, msg, ...(fields ? { fields } : {}) });
  };
  const registry = new Registry();
  // The same families as the forwarding thread's registry: /metrics sums the two (AggregatorRegistry).
  const metrics = createProxyMetrics(registry);
  const egress = payloadEgress({ metadataUrl: config.telemetry.gcpMetadataUrl, egress: config.telemetry.payloadEndpoints }, registry, log);
  let healthSoon = false;
  const postHealth = (): void => {
    healthSoon = false;
    post({ type: 'health', health: side.health() });
  };
  const healthChanged = (): void => {
    if (healthSoon) return;
    healthSoon = true;
    setImmediate(postHealth);
  };
  let side: TelemetrySide;
  try {
    if (testStartFail === 'report') throw new Error('telemetry side start failure requested by a test');
    side = await startTelemetrySide(config, {
      log,
      registry,
      trackerMetrics: metrics,
      servesEndpoint: egress.servesEndpoint,
      onJobEnded: (jobId, jobSpanId) => {
        post({ type: 'job-ended', jobId, jobSpanId });
        healthChanged();
      },
      onTokenLearned: (jobId, digest) => post({ type: 'token-learned', jobId, digest }),
    });
  } catch (err) {
    egress.close();
    post({ type: 'failed', message: (err as Error).message });
    return;
  }
  const healthTimer = setInterval(postHealth, HEALTH_INTERVAL_MS);
  let handledBytes = 0;
  let progressSoon = false;
  const progressed = (bytes: number): void => {
    handledBytes += bytes;
    if (progressSoon) return;
    progressSoon = true;
    // One message per burst, not per exchange.
    setImmediate(() => {
      progressSoon = false;
      post({ type: 'progress', bytes: handledBytes });
    });
  };
  let stopped = false;

  const exchange = (m: ExchangeMessage): void => {
    const { tracker } = side;
    try {
      if (m.type === 'track') {
        tracker.track(m.job);
        healthChanged();
      } else if (m.type === 'job-update') {
        tracker.jobUpdate({
          jobId: m.jobId,
          body: Buffer.from(m.body),
          status: m.status,
          at: m.at,
          ...(m.jobToken !== undefined ? { jobToken: m.jobToken } : {}),
          ...(m.jobStatus !== undefined ? { jobStatus: m.jobStatus } : {}),
        });
      } else if (m.type === 'artifact-transfer') {
        tracker.artifactTransfer({
          jobId: m.jobId,
          direction: m.direction,
          bytes: m.bytes,
          complete: m.complete,
          ...(m.jobToken !== undefined ? { jobToken: m.jobToken } : {}),
          ...(m.status !== undefined ? { status: m.status } : {}),
        });
      } else {
        tracker.tracePatch({
          jobId: m.jobId,
          body: Buffer.from(m.body),
          status: m.status,
          at: m.at,
          ...(m.jobToken !== undefined ? { jobToken: m.jobToken } : {}),
          ...(m.contentRange !== undefined ? { contentRange: m.contentRange } : {}),
          ...(m.range !== undefined ? { range: m.range } : {}),
          ...(m.jobStatus !== undefined ? { jobStatus: m.jobStatus } : {}),
        });
      }
    } catch (err) {
      // As in-process (http/server.ts observe): a failure on one exchange is logged, never fatal.
      log('error', 'telemetry failed on an observed exchange', { route: m.type, error: String(err) });
    }
    if (m.type === 'job-update' || m.type === 'trace-patch') progressed(m.body.byteLength);
  };

  port.on('message', (m: ToWorker) => {
    if (stopped) return;
    switch (m.type) {
      case 'exchanges':
        for (const e of m.batch) exchange(e);
        return;
      case 'metrics':
        if (metricsAnswersLeft <= 0) return;
        metricsAnswersLeft--;
        void Promise.all([registry.getMetricsAsJSON(), side.ciMetrics?.prometheusText().catch(() => '') ?? Promise.resolve('')]).then(
          ([json, text]) => post({ type: 'metrics', id: m.id, json, text }),
          () => post({ type: 'metrics', id: m.id, json: [], text: '' }),
        );
        return;
      case 'flush':
        // Health first: whoever waited for the flush reads the queues as they are now.
        void side.pipeline.flush(m.timeoutMs).finally(() => {
          postHealth();
          post({ type: 'flushed', id: m.id });
        });
        return;
      case 'stop':
        stopped = true;
        clearInterval(healthTimer);
        void side
          .stop(m.flushTimeoutMs)
          .catch((err: unknown) => log('error', `telemetry stop failed: ${(err as Error).message}`, { code: 'TELEMETRY_STOP_FAILED' }))
          .finally(() => {
            egress.close();
            post({ type: 'health', health: side.health() });
            post({ type: 'stopped' });
          });
        return;
      case 'test-crash':
        if (process.env[TEST_CRASH_ENV] === '1') {
          setImmediate(() => {
            throw new Error('telemetry worker crash requested by a test');
          });
        }
        return;
    }
  });
  post({ type: 'ready', jobs: side.tracker.followedJobs() });
  postHealth();
}

await main();
