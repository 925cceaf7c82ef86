// The composition root: assembles a running proxy from a validated
// configuration (metrics registry, export pipeline, job journal, job tracker,
// forwarding server and admin listener) and takes it down in the order that
// loses nothing (stop accepting → finish in-flight requests → journal the jobs
// still running → flush → spool the rest). With a spool, a restarted proxy
// resumes the journalled jobs before it accepts a request.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type http from 'node:http';
import { AggregatorRegistry, Gauge, Registry } from 'prom-client';
import type { EndpointHealth } from '../telemetry/export/endpoint.js';
import type { ProxyConfig, TelemetryThread } from './config/schema.js';
import type { Logger } from '../log.js';
import { createAdminServer, listenAdmin } from './http/admin.js';
import type { ExchangeObserver } from './http/routes.js';
import { securePrivateDir } from '../telemetry/export/private-files.js';
import { payloadEgress, type PayloadEgress } from './payload-egress.js';
import type { JobJournal } from './job/journal.js';
import { JobDecider } from './job/job-decision.js';
import { createProxyMetrics } from './metrics.js';
import type { CiMetricsExport } from './ci-metrics-export.js';
import { RunnerProxy } from './http/server.js';
import { FollowedJobs } from './telemetry-thread/followed-jobs.js';
import { TelemetryThreadObserver } from './telemetry-thread/thread-observer.js';
import { TelemetryWorkerHost, type WorkerState } from './telemetry-thread/worker-host.js';

/** What tests, the demo and the lab read of the tracker, in either telemetry thread. */
export interface TrackerView {
  /** Jobs followed (with telemetry or for CI/CD metrics only). */
  readonly activeJobs: number;
  /** Spans held for unsampled jobs still running (worker: as of its last health snapshot). */
  readonly heldSpans: number;
  jobContext(jobId: number): { traceId: string; spanId: string; sampled: boolean } | undefined;
}

/** What tests, the demo and the lab do with the export pipeline, in either telemetry thread. */
export interface PipelineView {
  /** Worker: as of its last health snapshot. */
  health(): EndpointHealth[];
  flush(timeoutMs: number): Promise<void>;
}

/** The telemetry worker as tests see it (`telemetry.thread: worker` only). */
export interface TelemetryWorkerView {
  readonly state: WorkerState;
  /** Resolves true once a worker is up (after a crash: the restarted one), false after `timeoutMs`. */
  ready(timeoutMs: number): Promise<boolean>;
  /** Kills the worker when its environment has GITLAB_OTEL_TEST_WORKER_CRASH=1; otherwise ignored (docs/architecture.md#telemetry-thread). */
  testCrash(): void;
}

export interface RunningProxy {
  address: AddressInfo;
  adminAddress?: AddressInfo;
  /** Where telemetry runs (telemetry.thread). */
  thread: TelemetryThread;
  tracker: TrackerView;
  pipeline: PipelineView;
  /** The job journal (with a spool, `telemetry.thread: main` only). */
  journal?: JobJournal;
  /** The forwarding thread's registry (with `main`, every series; with `worker`, see metricsText). */
  registry: Registry;
  /** CI/CD metrics (absent with `metrics.enabled: false`, and with `telemetry.thread: worker`). */
  ciMetrics?: CiMetricsExport;
  /** The text /metrics serves (without the admin listener too). */
  metricsText(): Promise<string>;
  /** `telemetry.thread: worker` only. */
  telemetryWorker?: TelemetryWorkerView;
  /** Graceful stop: in-flight requests finish (bounded), spans flush (bounded), the rest is spooled. */
  stop(): Promise<void>;
}

export interface StartOptions {
  log: Logger;
}

/** Telemetry as the composition root wires it: in this thread or in the worker. */
interface Telemetry {
  observer: ExchangeObserver;
  tracker: TrackerView;
  pipeline: PipelineView;
  journal?: JobJournal;
  ciMetrics?: CiMetricsExport;
  health(): Record<string, unknown>;
  /** Bytes held for telemetry beyond the forwarding path's own. */
  bufferedBytes(): number;
  metricsText(): Promise<string>;
  worker?: TelemetryWorkerView;
  stop(flushTimeoutMs: number): Promise<void>;
}

export async function startRunnerProxy(config: ProxyConfig, options: StartOptions): Promise<RunningProxy> {
  const { log } = options;
  // Before anything is written: the spool directory is the proxy user's alone, or the proxy does not start.
  if (config.spool) securePrivateDir(config.spool.dir);
  // One registry per proxy (not prom-client's global one): tests run several proxies in one process.
  const registry = new Registry();
  const metrics = createProxyMetrics(registry);
  const payloadEndpointDefaults = { metadataUrl: config.telemetry.gcpMetadataUrl, egress: config.telemetry.payloadEndpoints };
  const egress = payloadEgress(payloadEndpointDefaults, registry, log);
  const telemetry =
    config.telemetry.thread === 'worker'
      ? await workerTelemetry(config, log, registry, metrics, egress)
      : await mainTelemetry(config, log, registry, metrics, egress);
  let proxy: RunnerProxy;
  try {
    proxy = new RunnerProxy({
      upstream: {
        url: config.upstream.url,
        ca: config.upstream.caFile ? readFileSync(config.upstream.caFile) : undefined,
        insecureSkipVerify: config.upstream.insecureSkipVerify,
        headersTimeoutMs: config.upstream.headersTimeoutMs,
      },
      observer: telemetry.observer,
      maxPayloadBytes: config.telemetry.maxPayloadBytes,
      limits: config.limits,
      jobRouter: config.jobRouter,
      metrics,
      log,
    });
  } catch (err) {
    await telemetry.stop(0);
    egress.close();
    throw err;
  }
  const address = await proxy.listen(config.listen.port, config.listen.host);
  let admin: http.Server | undefined;
  let adminAddress: AddressInfo | undefined;
  if (config.admin) {
    admin = createAdminServer({
      registry,
      metrics: () => telemetry.metricsText(),
      health: () => ({
        ...telemetry.health(),
        requests_in_flight: proxy.activeRequests,
        telemetry_buffered_bytes: proxy.bufferedBytes + telemetry.bufferedBytes(),
      }),
      bearerToken: config.adminTokenFile ? readFileSync(config.adminTokenFile, 'utf8').trim() : undefined,
    });
    adminAddress = await listenAdmin(admin, config.admin.host, config.admin.port);
  }
  if (config.upstream.insecureSkipVerify) log('warn', 'TLS verification to GitLab is disabled (upstream.insecure_skip_verify)');
  logInsecureSettings(config, log);
  log('info', 'runner proxy listening', {
    listen: `${address.address}:${address.port}`,
    upstream: config.upstream.url.origin,
    admin: adminAddress ? `${adminAddress.address}:${adminAddress.port}` : 'off',
    endpoints: config.endpoints.map((e) => e.name).join(',') || 'none',
    telemetry_thread: config.telemetry.thread,
  });

  let stopping: Promise<void> | undefined;
  return {
    address,
    adminAddress,
    thread: config.telemetry.thread,
    tracker: telemetry.tracker,
    pipeline: telemetry.pipeline,
    ...(telemetry.journal ? { journal: telemetry.journal } : {}),
    registry,
    ...(telemetry.ciMetrics ? { ciMetrics: telemetry.ciMetrics } : {}),
    metricsText: () => telemetry.metricsText(),
    ...(telemetry.worker ? { telemetryWorker: telemetry.worker } : {}),
    stop() {
      stopping ??= (async () => {
        // Forwarding drains first; then telemetry journals or abandons its jobs and flushes, within one bound.
        await proxy.close(config.shutdown.graceMs);
        await telemetry.stop(config.shutdown.flushTimeoutMs);
        await new Promise<void>((resolve) => (admin ? admin.close(() => resolve()) : resolve()));
        egress.close();
        log('info', 'runner proxy stopped');
      })();
      return stopping;
    },
  };
}

/** `telemetry.thread: main`: the telemetry side on the forwarding event loop, the tracker as the observer. */
async function mainTelemetry(
  config: ProxyConfig,
  log: Logger,
  registry: Registry,
  metrics: ReturnType<typeof createProxyMetrics>,
  egress: PayloadEgress,
): Promise<Telemetry> {
  // Loaded here, not at the top: with `worker` the forwarding thread never loads the export side (gRPC, the OTel SDK).
  const { startTelemetrySide } = await import('./telemetry-side.js');
  const side = await startTelemetrySide(config, { log, registry, trackerMetrics: metrics, servesEndpoint: egress.servesEndpoint });
  const { tracker, pipeline, ciMetrics } = side;
  return {
    observer: tracker,
    tracker,
    pipeline,
    ...(side.journal ? { journal: side.journal } : {}),
    ...(ciMetrics ? { ciMetrics } : {}),
    health: () => ({ jobs_active: tracker.activeJobs, endpoints: pipeline.health() }),
    bufferedBytes: () => 0,
    metricsText: async () => {
      const [text, more] = await Promise.all([registry.metrics(), ciMetrics?.prometheusText().catch(() => '') ?? '']);
      return joinExposition(text, more);
    },
    stop: (flushTimeoutMs) => side.stop(flushTimeoutMs),
  };
}

/**
 * `telemetry.thread: worker` (docs/architecture.md#telemetry-thread): the
 * decision stays here; tracking, the journal, export and CI/CD metrics run in
 * the telemetry worker, which /healthz and /metrics read from snapshots.
 */
async function workerTelemetry(
  config: ProxyConfig,
  log: Logger,
  registry: Registry,
  metrics: ReturnType<typeof createProxyMetrics>,
  egress: PayloadEgress,
): Promise<Telemetry> {
  const followed = new FollowedJobs();
  const host = new TelemetryWorkerHost({ config, log, registry, followed, maxInFlightBytes: config.limits.maxBufferedBytes });
  const snapshotAge = new Gauge({
    name: 'gitlab_otel_telemetry_snapshot_age_seconds',
    help: "Age of the telemetry worker's figures served with this scrape, by snapshot (metrics, health); 0: fresh",
    labelNames: ['snapshot'],
    registers: [registry],
  });
  try {
    await host.start();
  } catch (err) {
    await host.stop(0);
    throw err;
  }
  const decider = new JobDecider({
    negotiation: {
      policy: config.telemetry.negotiation,
      nativeRunnerSpan: config.telemetry.nativeRunnerSpan,
      usePayloadEndpoints: config.telemetry.usePayloadEndpoints,
      upstreamUrl: config.upstream.url.toString(),
      servesEndpoint: egress.servesEndpoint,
      traceIds: config.telemetry.traceIds,
    },
    traceContext: config.telemetry.traceContext,
    sampling: config.sampling,
    followForMetrics: config.metrics.enabled,
    log,
    metrics,
  });
  const ageSeconds = (at: number | undefined): number => (at === undefined ? -1 : Math.max(0, Date.now() - at) / 1000);
  return {
    observer: new TelemetryThreadObserver(decider, followed, host, metrics.unauthenticated),
    tracker: {
      get activeJobs() {
        return followed.size;
      },
      get heldSpans() {
        return host.health?.health.held_spans ?? 0;
      },
      jobContext: (jobId) => followed.jobContext(jobId),
    },
    pipeline: {
      health: () => host.health?.health.endpoints ?? [],
      flush: (timeoutMs) => host.flush(timeoutMs),
    },
    health: () => {
      const snapshot = host.health;
      return {
        jobs_active: followed.size,
        endpoints: snapshot?.health.endpoints ?? [],
        telemetry_thread: 'worker',
        telemetry_worker: host.state,
        telemetry_snapshot_age_ms: snapshot ? Math.max(0, Date.now() - snapshot.at) : -1,
      };
    },
    bufferedBytes: () => host.inFlightBytes,
    metricsText: async () => {
      const snapshot = await host.metrics();
      snapshotAge.set({ snapshot: 'metrics' }, ageSeconds(snapshot?.at));
      snapshotAge.set({ snapshot: 'health' }, ageSeconds(host.health?.at));
      const own = await registry.getMetricsAsJSON();
      // The same families on both threads (each counts what it does): summed, one family each.
      const text = await AggregatorRegistry.aggregate(snapshot ? [own, snapshot.json] : [own]).metrics();
      return joinExposition(text, snapshot?.text ?? '');
    },
    worker: {
      get state() {
        return host.state;
      },
      ready: (timeoutMs) => host.ready(timeoutMs),
      testCrash: () => host.testCrash(),
    },
    stop: (flushTimeoutMs) => host.stop(flushTimeoutMs),
  };
}

/** Two Prometheus text expositions (format 0.0.4) as one; each family ends with a newline. */
function joinExposition(text: string, more: string): string {
  if (more === '') return text;
  return `${text.endsWith('\n') || text === '' ? text : `${text}\n`}${more}`;
}

/** Every setting that weakens transport security is said once at start (docs/security.md#plaintext-credentials). */
function logInsecureSettings(config: ProxyConfig, log: Logger): void {
  for (const [i, e] of config.endpoints.entries()) {
    if (e.allowInsecureAuth) {
      log('warn', 'credentials may go to this collector in clear (allow_insecure_auth)', {
        endpoint: e.name,
        key: `endpoints[${i}].allow_insecure_auth`,
      });
    }
    if (e.tls?.insecureSkipVerify) {
      log('warn', "TLS verification of this collector's certificate is disabled (tls.insecure_skip_verify)", {
        endpoint: e.name,
        key: `endpoints[${i}].tls.insecure_skip_verify`,
      });
    }
  }
}
