// metrics/prometheus-reader.ts: a pull reader on a real MeterProvider, text in
// the Prometheus exposition format (docs/metrics.md#prometheus): cumulative,
// no timestamps, no target_info / otel_scope_info series.
import t from 'tap';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { PrometheusTextReader } from '../../../src/telemetry/metrics/prometheus-reader.js';

t.test('counters and histograms as cumulative Prometheus text', async (t) => {
  const reader = new PrometheusTextReader();
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'svc' }), readers: [reader] });
  t.teardown(() => provider.shutdown());
  const meter = provider.getMeter('test');
  const jobs = meter.createCounter('ci_jobs', { description: 'Jobs seen' });
  const duration = meter.createHistogram('ci_job_duration', { unit: 's', advice: { explicitBucketBoundaries: [1, 10] } });

  jobs.add(2, { status: 'success' });
  duration.record(5, { status: 'success' });
  const first = await reader.text();
  t.match(first, /^# HELP ci_jobs_total Jobs seen$/m);
  t.match(first, /^# TYPE ci_jobs_total counter$/m);
  t.match(first, /^ci_jobs_total\{status="success"\} 2$/m, 'no timestamp after the value');
  t.match(first, /^ci_job_duration_bucket\{status="success",le="10"\} 1$/m);
  t.match(first, /^ci_job_duration_bucket\{status="success",le="1"\} 0$/m);
  t.match(first, /^ci_job_duration_sum\{status="success"\} 5$/m);
  t.notMatch(first, /target_info|otel_scope_info/);

  jobs.add(3, { status: 'success' });
  const second = await reader.text();
  t.match(second, /^ci_jobs_total\{status="success"\} 5$/m, 'cumulative across scrapes');
});

t.test('an observable callback that throws leaves out that instrument only', async (t) => {
  const reader = new PrometheusTextReader();
  const provider = new MeterProvider({ readers: [reader] });
  t.teardown(() => provider.shutdown());
  const meter = provider.getMeter('test');
  meter.createObservableGauge('broken_gauge').addCallback(() => {
    throw new Error('callback failed');
  });
  meter.createObservableGauge('queue_depth').addCallback((r) => r.observe(7));
  const text = await reader.text();
  t.match(text, /^queue_depth 7$/m);
  t.notMatch(text, /broken_gauge \d/);
});
