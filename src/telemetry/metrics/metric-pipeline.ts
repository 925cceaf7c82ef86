// One MeterProvider for the process: a periodic OTLP reader per metric
// endpoint and, when the admin listener is on, a Prometheus pull reader on the
// same aggregation (docs/metrics.md#export). Interval and timeout come from
// OTEL_METRIC_EXPORT_INTERVAL / _TIMEOUT (metric-env.ts). The SDK's per-
// instrument cardinality limit stays on as a second bound behind ours.
import type { Attributes, Meter } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type MetricReader } from '@opentelemetry/sdk-metrics';
import type { MetricExportSettings } from './metric-env.js';
import { OtlpMetricExporter, type MetricExportListener, type MetricTransport } from './otlp-metric-exporter.js';
import { PrometheusTextReader } from './prometheus-reader.js';

export interface MetricPipelineOptions {
  readonly resourceAttributes: Attributes;
  /** One transport per endpoint that receives metrics. */
  readonly transports: readonly { readonly name: string; readonly transport: MetricTransport }[];
  readonly settings: MetricExportSettings;
  readonly prometheus: boolean;
  readonly onExport?: (endpoint: string, ...args: Parameters<MetricExportListener>) => void;
}

export class MetricPipeline {
  readonly provider: MeterProvider;
  readonly prometheus?: PrometheusTextReader;

  constructor(options: MetricPipelineOptions) {
    const readers: MetricReader[] = options.transports.map(
      ({ name, transport }) =>
        new PeriodicExportingMetricReader({
          exporter: new OtlpMetricExporter(transport, {
            timeoutMs: options.settings.timeoutMs,
            temporality: options.settings.temporality,
            onExport: (outcome) => options.onExport?.(name, outcome),
          }),
          exportIntervalMillis: options.settings.intervalMs,
          exportTimeoutMillis: options.settings.timeoutMs,
        }),
    );
    if (options.prometheus) {
      this.prometheus = new PrometheusTextReader();
      readers.push(this.prometheus);
    }
    this.provider = new MeterProvider({ resource: resourceFromAttributes(options.resourceAttributes), readers });
  }

  meter(name: string, version?: string): Meter {
    return this.provider.getMeter(name, version);
  }

  /** The final export (SIGTERM): every reader collects and exports once more, bounded by timeoutMs. */
  async shutdown(timeoutMs: number): Promise<void> {
    await this.provider.shutdown({ timeoutMillis: timeoutMs }).catch(() => undefined);
  }
}
