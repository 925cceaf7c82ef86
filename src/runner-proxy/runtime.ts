// The composition root: assembles a running proxy from a validated
// configuration (metrics registry, export pipeline, job journal, job tracker,
// forwarding server and admin listener) and takes it down in the order that
// loses nothing (stop accepting → finish in-flight requests → journal the jobs
// still running → flush → spool the rest). With a spool, a restarted proxy
// resumes the journalled jobs before it accepts a request.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type http from 'node:http';
import { Registry } from 'prom-client';
import { RESOURCE } from '../telemetry/attributes.js';
import { createExportMetrics, type ExportMetrics } from '../telemetry/export/export-metrics.js';
import { ExportPipeline } from '../telemetry/export/pipeline.js';
import type { ProxyConfig } from './config/schema.js';
import type { Logger } from '../log.js';
import { VERSION } from '../version.js';
import { createAdminServer, listenAdmin } from './http/admin.js';
import { securePrivateDir } from '../telemetry/export/private-files.js';
import { payloadEgress } from './payload-egress.js';
import { JobJournal } from './job/journal.js';
import { JobTracker } from './job/tracker.js';
import { createProxyMetrics } from './metrics.js';
import { startCiMetrics, type CiMetricsExport } from './ci-metrics-export.js';
import { RunnerProxy } from './http/server.js';

export interface RunningProxy {
  address: AddressInfo;
  adminAddress?: AddressInfo;
  tracker: JobTracker;
  pipeline: ExportPipeline;
  /** The job journal (with a spool only). */
  journal?: JobJournal;
  registry: Registry;
  /** CI/CD metrics (absent with `metrics.enabled: false`). */
  ciMetrics?: CiMetricsExport;
  /** Graceful stop: in-flight requests finish (bounded), spans flush (bounded), the rest is spooled. */
  stop(): Promise<void>;
}

export interface StartOptions {
  log: Logger;
}

export async function startRunnerProxy(config: ProxyConfig, options: StartOptions): Promise<RunningProxy> {
  const { log } = options;
  // Before anything is written: the spool directory is the proxy user's alone, or the proxy does not start.
  if (config.spool) securePrivateDir(config.spool.dir);
  // One registry per proxy (not prom-client's global one): tests run several proxies in one process.
  const registry = new Registry();
  const metrics = createProxyMetrics(registry);
  const exportMetrics = createExportMetrics(registry);
  const pipeline = await ExportPipeline.create({
    endpoints: config.endpoints,
    spool: config.spool,
    metrics: exportMetrics,
    log,
  });
  const journal = config.spool ? openJournal(config.spool.dir, log, exportMetrics) : undefined;
  const payloadEndpointDefaults = { metadataUrl: config.telemetry.gcpMetadataUrl, egress: config.telemetry.payloadEndpoints };
  const egress = payloadEgress(payloadEndpointDefaults, registry, log);
  const resourceAttributes = {
    ...config.telemetry.resourceAttributes,
    [RESOURCE.serviceName]: config.telemetry.serviceName,
    [RESOURCE.proxyVersion]: VERSION,
  };
  let activeJobs = (): number => 0;
  const ciMetrics = startCiMetrics({
    config: config.metrics,
    resourceAttributes,
    prometheus: config.admin !== null,
    activeJobs: () => activeJobs(),
    registry,
    log,
  });
  const tracker = new JobTracker({
    negotiation: {
      policy: config.telemetry.negotiation,
      nativeRunnerSpan: config.telemetry.nativeRunnerSpan,
      usePayloadEndpoints: config.telemetry.usePayloadEndpoints,
      upstreamUrl: config.upstream.url.toString(),
      servesEndpoint: egress.servesEndpoint,
      traceIds: config.telemetry.traceIds,
    },
    sink: pipeline,
    endpoints: config.endpoints,
    payloadEndpointDefaults,
    resourceAttributes,
    traceContext: config.telemetry.traceContext,
    logSpans: {
      maxSpansPerJob: config.telemetry.maxSpansPerJob,
      maxAttributeLength: config.telemetry.maxAttributeLength,
    },
    abandonAfterMs: config.telemetry.abandonAfterMs,
    sampling: config.sampling,
    journal,
    log,
    metrics: {
      ...metrics,
      spansDropped: exportMetrics.dropped,
    },
    ...(ciMetrics ? { ciMetrics: ciMetrics.ciMetrics } : {}),
    queueSpan: config.telemetry.queueSpan,
  });
  activeJobs = () => tracker.activeJobs;
  const resumed = tracker.restore();
  if (resumed > 0) log('info', 'resumed jobs from the journal', { jobs: resumed });
  // Spools of removed collectors are dropped, never sent; the journalled jobs' payload endpoints resume.
  pipeline.settleOrphans(tracker.payloadEndpointSettings());
  const proxy = new RunnerProxy({
    upstream: {
      url: config.upstream.url,
      ca: config.upstream.caFile ? readFileSync(config.upstream.caFile) : undefined,
      insecureSkipVerify: config.upstream.insecureSkipVerify,
      headersTimeoutMs: config.upstream.headersTimeoutMs,
    },
    observer: tracker,
    maxPayloadBytes: config.telemetry.maxPayloadBytes,
    limits: config.limits,
    jobRouter: config.jobRouter,
    metrics,
    log,
  });
  const address = await proxy.listen(config.listen.port, config.listen.host);
  let admin: http.Server | undefined;
  let adminAddress: AddressInfo | undefined;
  if (config.admin) {
    admin = createAdminServer({
      registry,
      ...(ciMetrics ? { extraMetrics: () => ciMetrics.prometheusText() } : {}),
      health: () => ({
        jobs_active: tracker.activeJobs,
        requests_in_flight: proxy.activeRequests,
        telemetry_buffered_bytes: proxy.bufferedBytes,
        endpoints: pipeline.health(),
      }),
      bearerToken: config.adminTokenFile ? readFileSync(config.adminTokenFile, 'utf8').trim() : undefined,
    });
    adminAddress = await listenAdmin(admin, config.admin.host, config.admin.port);
  }
  const sweeper = setInterval(() => tracker.sweep(), 60_000);
  sweeper.unref();
  if (config.upstream.insecureSkipVerify) log('warn', 'TLS verification to GitLab is disabled (upstream.insecure_skip_verify)');
  logInsecureSettings(config, log);
  log('info', 'runner proxy listening', {
    listen: `${address.address}:${address.port}`,
    upstream: config.upstream.url.origin,
    admin: adminAddress ? `${adminAddress.address}:${adminAddress.port}` : 'off',
    endpoints: config.endpoints.map((e) => e.name).join(',') || 'none',
  });

  let stopping: Promise<void> | undefined;
  return {
    address,
    adminAddress,
    tracker,
    pipeline,
    journal,
    registry,
    ...(ciMetrics ? { ciMetrics } : {}),
    stop() {
      stopping ??= (async () => {
        clearInterval(sweeper);
        await proxy.close(config.shutdown.graceMs);
        // The jobs go on without us. With a journal the next process finishes
        // their spans; without one, closing them now is the best we can do.
        if (journal) tracker.suspend();
        else tracker.abandonAll();
        // One bound for the whole flush: shutdown flushes within it, then spools what is left.
        // The final metric export (abandoned jobs counted) runs alongside, within the same bound.
        await Promise.all([pipeline.shutdown(config.shutdown.flushTimeoutMs), ciMetrics?.shutdown(config.shutdown.flushTimeoutMs)]);
        journal?.close();
        await new Promise<void>((resolve) => (admin ? admin.close(() => resolve()) : resolve()));
        egress.close();
        log('info', 'runner proxy stopped');
      })();
      return stopping;
    },
  };
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

/**
 * The journal lives in the spool directory, next to the spans it must not
 * outlive. Without it the proxy still runs; a restart then loses the jobs in
 * progress.
 */
function openJournal(spoolDir: string, log: Logger, metrics: ExportMetrics): JobJournal | undefined {
  try {
    // The spool holds span attributes and the journal a job's unparsed log tail: owner-only.
    mkdirSync(spoolDir, { recursive: true, mode: 0o700 });
    return JobJournal.open(join(spoolDir, 'journal'), (w) => {
      metrics.spoolCorrupt.inc({ file: 'journal' }, w.corrupt + (w.torn ? 1 : 0));
      log('warn', 'torn or corrupt job journal records skipped', { file: w.file, corrupt: w.corrupt, torn: w.torn });
    });
  } catch (err) {
    log('warn', 'job journal unavailable; jobs in progress will not survive a restart', {
      code: 'JOURNAL_UNAVAILABLE',
      errno: (err as NodeJS.ErrnoException).code ?? 'error',
    });
    return undefined;
  }
}
