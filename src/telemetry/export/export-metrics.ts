// The export side's own metrics, registered on the registry the proxy serves at /metrics.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * Why spans were given up on: the `reason` label of gitlab_otel_spans_dropped_total.
 * Declared once; every drop goes through countDropped with one of these.
 */
export const DROP_REASONS = [
  'queue_full', // the endpoint's queue had no room (span count or bytes)
  'max_age', // older than queue.max_age before it could be delivered
  'rejected', // a non-retryable gRPC status
  'unauthenticated', // refused after one token refresh
  'partial_success', // the collector rejected these spans in a partial success
  'spool_full', // evicted with the oldest spool segment
  'shutdown', // still queued at shutdown with no spool to keep them
  'endpoint_limit', // too many distinct payload endpoints at once
  'endpoint_invalid', // the endpoint cannot be used (bad URL, insecure auth refused, unreadable TLS file)
  'endpoint_removed', // spooled before a restart for an endpoint neither configured nor named by a journalled job
  'sampling_hold_full', // an unsampled job's spans did not fit the hold kept until its outcome is known
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/** gitlab_otel_spans_dropped_total: shared by the export side and the proxy's sampling hold. */
export type SpansDropped = Counter<'endpoint' | 'reason'>;

export function countDropped(dropped: SpansDropped, endpoint: string, reason: DropReason, n: number): void {
  if (n > 0) dropped.inc({ endpoint, reason }, n);
}

export interface ExportMetrics {
  enqueued: Counter<'endpoint'>;
  exported: Counter<'endpoint'>;
  retried: Counter<'endpoint'>;
  dropped: SpansDropped;
  queueSpans: Gauge<'endpoint'>;
  queueBytes: Gauge<'endpoint'>;
  exportSeconds: Histogram<'endpoint' | 'outcome'>;
  tokenRefreshes: Counter<'endpoint'>;
  tokenFailures: Counter<'endpoint'>;
  endpointUp: Gauge<'endpoint'>;
  spoolBytes: Gauge;
  spoolCorrupt: Counter<'file'>;
}

export function createExportMetrics(registry: Registry): ExportMetrics {
  const registers = [registry];
  return {
    enqueued: new Counter({
      name: 'gitlab_otel_spans_enqueued_total',
      help: 'Spans accepted into an endpoint queue',
      labelNames: ['endpoint'],
      registers,
    }),
    exported: new Counter({
      name: 'gitlab_otel_spans_exported_total',
      help: 'Spans the collector accepted',
      labelNames: ['endpoint'],
      registers,
    }),
    retried: new Counter({
      name: 'gitlab_otel_spans_retried_total',
      help: 'Spans sent again after a retryable failure',
      labelNames: ['endpoint'],
      registers,
    }),
    dropped: new Counter({
      name: 'gitlab_otel_spans_dropped_total',
      help: 'Spans given up on, by reason',
      labelNames: ['endpoint', 'reason'],
      registers,
    }),
    queueSpans: new Gauge({
      name: 'gitlab_otel_export_queue_spans',
      help: 'Spans queued or in flight',
      labelNames: ['endpoint'],
      registers,
    }),
    queueBytes: new Gauge({
      name: 'gitlab_otel_export_queue_bytes',
      help: 'Bytes queued or in flight: exact for encoded span groups, estimated for spans kept as records',
      labelNames: ['endpoint'],
      registers,
    }),
    exportSeconds: new Histogram({
      name: 'gitlab_otel_export_duration_seconds',
      help: 'Duration of one OTLP Export call',
      labelNames: ['endpoint', 'outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    tokenRefreshes: new Counter({
      name: 'gitlab_otel_auth_token_refreshes_total',
      help: 'Bearer tokens obtained',
      labelNames: ['endpoint'],
      registers,
    }),
    tokenFailures: new Counter({
      name: 'gitlab_otel_auth_token_failures_total',
      help: 'Failed attempts to obtain a bearer token',
      labelNames: ['endpoint'],
      registers,
    }),
    endpointUp: new Gauge({
      name: 'gitlab_otel_export_endpoint_up',
      help: '1 when the last export to the endpoint succeeded',
      labelNames: ['endpoint'],
      registers,
    }),
    spoolBytes: new Gauge({ name: 'gitlab_otel_spool_bytes', help: 'Bytes in the span spool', registers }),
    spoolCorrupt: new Counter({
      name: 'gitlab_otel_spool_corrupt_records_total',
      help: 'Torn or corrupt spool/journal records skipped',
      labelNames: ['file'],
      registers,
    }),
  };
}
