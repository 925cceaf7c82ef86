import t from 'tap';
import { AggregationTemporality, InstrumentType } from '@opentelemetry/sdk-metrics';
import {
  DEFAULT_METRIC_EXPORT,
  MetricEnvError,
  metricExportFromEnv,
  temporalitySelector,
} from '../../../src/telemetry/metrics/metric-env.js';

t.test('defaults are the specification defaults', async (t) => {
  t.same(metricExportFromEnv({}), DEFAULT_METRIC_EXPORT);
  t.same(
    metricExportFromEnv({ OTEL_METRIC_EXPORT_INTERVAL: '', OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: ' ' }),
    DEFAULT_METRIC_EXPORT,
  );
});

t.test('the interval, timeout and temporality are read from the environment', async (t) => {
  t.same(
    metricExportFromEnv({
      OTEL_METRIC_EXPORT_INTERVAL: '5000',
      OTEL_METRIC_EXPORT_TIMEOUT: '2000',
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'Delta',
    }),
    { intervalMs: 5000, timeoutMs: 2000, temporality: 'delta' },
  );
  t.equal(metricExportFromEnv({ OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'LOWMEMORY' }).temporality, 'lowmemory');
});

t.test('bad values are errors that name the variable', async (t) => {
  for (const [name, value] of [
    ['OTEL_METRIC_EXPORT_INTERVAL', '0'],
    ['OTEL_METRIC_EXPORT_INTERVAL', '10s'],
    ['OTEL_METRIC_EXPORT_INTERVAL', '-5'],
    ['OTEL_METRIC_EXPORT_TIMEOUT', 'soon'],
    ['OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE', 'sometimes'],
  ] as const) {
    t.throws(
      () => metricExportFromEnv({ [name]: value }),
      { name: 'MetricEnvError', code: 'METRIC_ENV_INVALID', variable: name },
      `${name}=${value}`,
    );
  }
  const err = t.throws(() => metricExportFromEnv({ OTEL_METRIC_EXPORT_INTERVAL: '1000', OTEL_METRIC_EXPORT_TIMEOUT: '5000' }));
  t.ok(
    err instanceof MetricEnvError && /must not exceed OTEL_METRIC_EXPORT_INTERVAL/.test(err.message),
    'a timeout past the interval is refused',
  );
});

t.test('temporality per instrument kind follows the OTLP exporter specification', async (t) => {
  const { DELTA, CUMULATIVE } = AggregationTemporality;
  const kinds = [
    InstrumentType.COUNTER,
    InstrumentType.OBSERVABLE_COUNTER,
    InstrumentType.HISTOGRAM,
    InstrumentType.UP_DOWN_COUNTER,
    InstrumentType.OBSERVABLE_UP_DOWN_COUNTER,
    InstrumentType.OBSERVABLE_GAUGE,
  ];
  const table = (p: 'cumulative' | 'delta' | 'lowmemory') => kinds.map((k) => temporalitySelector(p)(k));
  t.same(table('cumulative'), [CUMULATIVE, CUMULATIVE, CUMULATIVE, CUMULATIVE, CUMULATIVE, CUMULATIVE]);
  t.same(table('delta'), [DELTA, DELTA, DELTA, CUMULATIVE, CUMULATIVE, CUMULATIVE]);
  t.same(table('lowmemory'), [DELTA, CUMULATIVE, DELTA, CUMULATIVE, CUMULATIVE, CUMULATIVE]);
});
