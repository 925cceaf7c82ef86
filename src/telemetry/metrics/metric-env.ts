// The OpenTelemetry environment variables that govern metric export. The SDK's
// PeriodicExportingMetricReader takes its interval as a constructor option and
// reads no variable itself, so the product reads them here (docs/metrics.md#export).
// Pure: an environment in, settings or an error naming the variable out.
import { AggregationTemporality, InstrumentType, type AggregationTemporalitySelector } from '@opentelemetry/sdk-metrics';

export type TemporalityPreference = 'cumulative' | 'delta' | 'lowmemory';

export interface MetricExportSettings {
  /** OTEL_METRIC_EXPORT_INTERVAL, milliseconds between exports. */
  readonly intervalMs: number;
  /** OTEL_METRIC_EXPORT_TIMEOUT, deadline of one export. */
  readonly timeoutMs: number;
  /** OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE. */
  readonly temporality: TemporalityPreference;
}

/** The specification's defaults (OpenTelemetry SDK environment variables). */
export const DEFAULT_METRIC_EXPORT: MetricExportSettings = { intervalMs: 60_000, timeoutMs: 30_000, temporality: 'cumulative' };

export class MetricEnvError extends Error {
  readonly code = 'METRIC_ENV_INVALID';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'MetricEnvError';
  }
}

function positiveMs(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) <= 0 || !Number.isSafeInteger(Number(raw))) {
    throw new MetricEnvError(name, `must be a positive whole number of milliseconds, got "${raw.slice(0, 40)}"`);
  }
  return Number(raw);
}

export function metricExportFromEnv(env: NodeJS.ProcessEnv): MetricExportSettings {
  const intervalMs = positiveMs(env, 'OTEL_METRIC_EXPORT_INTERVAL', DEFAULT_METRIC_EXPORT.intervalMs);
  const timeoutMs = positiveMs(env, 'OTEL_METRIC_EXPORT_TIMEOUT', DEFAULT_METRIC_EXPORT.timeoutMs);
  const name = 'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE';
  const raw = env[name]?.trim().toLowerCase();
  let temporality: TemporalityPreference = DEFAULT_METRIC_EXPORT.temporality;
  if (raw !== undefined && raw !== '') {
    if (raw !== 'cumulative' && raw !== 'delta' && raw !== 'lowmemory') {
      throw new MetricEnvError(name, `must be cumulative, delta or lowmemory, got "${raw.slice(0, 40)}"`);
    }
    temporality = raw;
  }
  // The SDK refuses a timeout longer than the interval; say so in our words first.
  if (timeoutMs > intervalMs) {
    throw new MetricEnvError(
      'OTEL_METRIC_EXPORT_TIMEOUT',
      `(${timeoutMs} ms) must not exceed OTEL_METRIC_EXPORT_INTERVAL (${intervalMs} ms)`,
    );
  }
  return { intervalMs, timeoutMs, temporality };
}

/**
 * The OTLP exporter specification's mapping of the preference to a temporality
 * per instrument kind: `delta` keeps up-down counters cumulative, `lowmemory`
 * makes only synchronous counters and histograms delta.
 */
export function temporalitySelector(preference: TemporalityPreference): AggregationTemporalitySelector {
  return (kind: InstrumentType) => {
    if (preference === 'cumulative') return AggregationTemporality.CUMULATIVE;
    switch (kind) {
      case InstrumentType.COUNTER:
      case InstrumentType.HISTOGRAM:
        return AggregationTemporality.DELTA;
      case InstrumentType.OBSERVABLE_COUNTER:
        return preference === 'delta' ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE;
      default:
        return AggregationTemporality.CUMULATIVE;
    }
  };
}
