// The CI/CD metrics as Prometheus text, for the admin listener's /metrics
// (docs/metrics.md#prometheus). A pull reader on the same MeterProvider as the
// OTLP readers, so Prometheus and the collector see the same aggregation; the
// text is the OpenTelemetry Prometheus exporter's serializer (its HTTP server
// is not used: the admin listener already serves /metrics).
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { AggregationTemporality, MetricReader } from '@opentelemetry/sdk-metrics';

export class PrometheusTextReader extends MetricReader {
  // No prefix, no timestamps (Prometheus stamps scrapes itself), no
  // target_info/otel_scope_info series: the proxy's own metrics already say who it is.
  private readonly serializer = new PrometheusSerializer(undefined, false, undefined, true, true);

  constructor() {
    // Prometheus counters and histograms are cumulative by definition.
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }

  /** One scrape. Collection errors (an observable callback throwing) leave out that instrument only. */
  async text(): Promise<string> {
    const { resourceMetrics } = await this.collect({ timeoutMillis: 5_000 });
    return this.serializer.serialize(resourceMetrics);
  }

  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}
