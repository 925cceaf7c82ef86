// The telemetry side of the proxy, assembled (docs/architecture.md#telemetry-thread):
// the export pipeline, the CI/CD metrics, the job journal and the job tracker,
// with the sweep that gives up on silent jobs and the stop that loses nothing.
// The same assembly runs on the forwarding thread (`telemetry.thread: main`)
// or in the telemetry worker (`worker`); only what feeds the tracker differs.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { RESOURCE } from '../telemetry/attributes.js';
import type { EndpointHealth } from '../telemetry/export/endpoint.js';
import { createExportMetrics, type ExportMetrics } from '../telemetry/export/export-metrics.js';
import { ExportPipeline } from '../telemetry/export/pipeline.js';
import { VERSION } from '../version.js';
import { startCiMetrics, type CiMetricsExport } from './ci-metrics-export.js';
import type { ProxyConfig } from './config/schema.js';
import { JobJournal } from './job/journal.js';
import { JobTracker, type JobTrackerMetrics, type JobTrackerOptions } from './job/tracker.js';
import type { ServesEndpoint } from './wire/negotiation.js';

export interface TelemetrySideOptions {
  readonly log: Logger;
  /** The registry of this thread; the export side's metrics are registered on it. */
  readonly registry: Registry;
  readonly trackerMetrics: JobTrackerMetrics;
  /** The payload egress policy's answer (payload-egress.ts). */
  readonly servesEndpoint: ServesEndpoint;
  readonly onJobEnded?: JobTrackerOptions['onJobEnded'];
  readonly onTokenLearned?: JobTrackerOptions['onTokenLearned'];
}

export interface TelemetryHealth {
  jobs_active: number;
  held_spans: number;
  endpoints: EndpointHealth[];
}

export interface TelemetrySide {
  readonly tracker: JobTracker;
  readonly pipeline: ExportPipeline;
  readonly journal?: JobJournal;
  readonly ciMetrics?: CiMetricsExport;
  health(): TelemetryHealth;
  /**
   * After forwarding has drained: the jobs still running are journalled (or
   * abandoned without a journal), spans flush and the final metric export
   * runs within `flushTimeoutMs`, the rest is spooled, the journal closes.
   */
  stop(flushTimeoutMs: number): Promise<void>;
}

export async function startTelemetrySide(config: ProxyConfig, options: TelemetrySideOptions): Promise<TelemetrySide> {
  const { log, registry } = options;
  const exportMetrics = createExportMetrics(registry);
  const pipeline = await ExportPipeline.create({
    endpoints: config.endpoints,
    spool: config.spool,
    metrics: exportMetrics,
    log,
  });
  const journal = config.spool ? openJournal(config.spool.dir, log, exportMetrics) : undefined;
  const payloadEndpointDefaults = { metadataUrl: config.telemetry.gcpMetadataUrl, egress: config.telemetry.payloadEndpoints };
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
      servesEndpoint: options.servesEndpoint,
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
    metrics: { ...options.trackerMetrics, spansDropped: exportMetrics.dropped },
    ...(ciMetrics ? { ciMetrics: ciMetrics.ciMetrics } : {}),
    queueSpan: config.telemetry.queueSpan,
    ...(options.onJobEnded ? { onJobEnded: options.onJobEnded } : {}),
    ...(options.onTokenLearned ? { onTokenLearned: options.onTokenLearned } : {}),
  });
  activeJobs = () => tracker.activeJobs;
  const resumed = tracker.restore();
  if (resumed > 0) log('info', 'resumed jobs from the journal', { jobs: resumed });
  // Spools of removed collectors are dropped, never sent; the journalled jobs' payload endpoints resume.
  pipeline.settleOrphans(tracker.payloadEndpointSettings());
  const sweeper = setInterval(() => tracker.sweep(), 60_000);
  sweeper.unref();
  let stopping: Promise<void> | undefined;
  return {
    tracker,
    pipeline,
    ...(journal ? { journal } : {}),
    ...(ciMetrics ? { ciMetrics } : {}),
    health: () => ({ jobs_active: tracker.activeJobs, held_spans: tracker.heldSpans, endpoints: pipeline.health() }),
    stop(flushTimeoutMs) {
      stopping ??= (async () => {
        clearInterval(sweeper);
        // The jobs go on without us. With a journal the next process finishes
        // their spans; without one, closing them now is the best we can do.
        if (journal) tracker.suspend();
        else tracker.abandonAll();
        // One bound for the whole flush: shutdown flushes within it, then spools what is left.
        // The final metric export (abandoned jobs counted) runs alongside, within the same bound.
        await Promise.all([pipeline.shutdown(flushTimeoutMs), ciMetrics?.shutdown(flushTimeoutMs)]);
        journal?.close();
      })();
      return stopping;
    },
  };
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
