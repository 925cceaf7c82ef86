// The CI/CD metrics side of the composition root (docs/metrics.md#export): one
// MetricPipeline with a periodic OTLP reader per metric endpoint (the trace
// endpoints by default, same TLS/auth/plaintext rules: they go through the
// same transports) and a Prometheus pull reader for the admin listener, and
// the CiMetrics instruments the job tracker feeds. Export settings come from
// OTEL_METRIC_EXPORT_INTERVAL / _TIMEOUT and the temporality preference.
import type { Attributes } from '@opentelemetry/api';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { createTransport } from '../telemetry/export/otlp-client.js';
import { MetricPipeline } from '../telemetry/metrics/metric-pipeline.js';
import type { MetricTransport } from '../telemetry/metrics/otlp-metric-exporter.js';
import { VERSION } from '../version.js';
import type { MetricsConfig } from './config/schema.js';
import { CiMetrics } from './job/ci-metrics.js';

export interface CiMetricsExport {
  readonly ciMetrics: CiMetrics;
  readonly pipeline: MetricPipeline;
  /** The CI/CD series in Prometheus text, for /metrics; empty without the admin listener. */
  prometheusText(): Promise<string>;
  /** The final export (SIGTERM), within `timeoutMs`. */
  shutdown(timeoutMs: number): Promise<void>;
}

export interface CiMetricsExportOptions {
  readonly config: MetricsConfig;
  readonly resourceAttributes: Attributes;
  /** Whether the admin listener serves /metrics. */
  readonly prometheus: boolean;
  readonly activeJobs: () => number;
  readonly registry: Registry;
  readonly log: Logger;
}

/** undefined when metrics are off (`metrics.enabled: false`). */
export function startCiMetrics(options: CiMetricsExportOptions): CiMetricsExport | undefined {
  const { config, log } = options;
  if (!config.enabled) return undefined;
  const settings = config.export;
  for (const s of config.skippedEndpoints) log('warn', `no metrics to this endpoint: ${s.reason}`, { endpoint: s.endpoint });
  const exports = new Counter({
    name: 'gitlab_otel_metric_exports_total',
    help: 'OTLP metric exports by endpoint and outcome (ok, partial, or the failure code)',
    labelNames: ['endpoint', 'outcome'],
    registers: [options.registry],
  });
  const transports: { name: string; transport: MetricTransport }[] = [];
  for (const endpoint of config.endpoints) {
    // Weakened transport security is said at start for metrics too (docs/security.md#plaintext-credentials).
    if (endpoint.allowInsecureAuth)
      log('warn', 'metric credentials may go to this collector in clear (allow_insecure_auth)', { endpoint: endpoint.name });
    if (endpoint.tls?.insecureSkipVerify) {
      log('warn', "TLS verification of this metric collector's certificate is disabled (tls.insecure_skip_verify)", {
        endpoint: endpoint.name,
      });
    }
    try {
      transports.push({ name: endpoint.name, transport: createTransport(endpoint, {}, undefined, 'metrics') });
    } catch (err) {
      log('warn', `no metrics to this endpoint: ${(err as Error).message}`, { endpoint: endpoint.name });
    }
  }
  const failing = new Set<string>();
  const pipeline = new MetricPipeline({
    resourceAttributes: options.resourceAttributes,
    transports,
    settings,
    prometheus: options.prometheus,
    onExport: (endpoint, outcome) => {
      exports.inc({ endpoint, outcome: outcome.kind === 'error' ? outcome.code : outcome.kind });
      // One line per state change, as for traces: an outage is not a log flood.
      if (outcome.kind === 'error' && !failing.has(endpoint)) {
        failing.add(endpoint);
        log('warn', 'metric export failing', { endpoint, code: outcome.code });
      } else if (outcome.kind !== 'error' && failing.delete(endpoint)) {
        log('info', 'metric export recovered', { endpoint });
      }
    },
  });
  const ciMetrics = new CiMetrics({
    meter: pipeline.meter('gitlab-otel/ci', VERSION),
    projectAttribute: config.projectAttribute,
    pipelineNameAttribute: config.pipelineNameAttribute,
    maxAttributeValues: config.maxAttributeValues,
    ...(config.concurrent !== undefined ? { concurrent: config.concurrent } : {}),
    activeJobs: options.activeJobs,
  });
  log('info', 'CI/CD metrics on', {
    endpoints: transports.map((t) => t.name).join(',') || 'none',
    interval_ms: settings.intervalMs,
    temporality: settings.temporality,
  });
  return {
    ciMetrics,
    pipeline,
    prometheusText: () => pipeline.prometheus?.text() ?? Promise.resolve(''),
    shutdown: (timeoutMs) => pipeline.shutdown(timeoutMs),
  };
}
