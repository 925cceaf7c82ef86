// export/export-metrics.ts: the export side's Prometheus metrics on a fresh
// prom-client registry, and countDropped's rule (a drop of zero spans is no
// sample). Read back through the registry's own exposition text.
import t from 'tap';
import { Registry } from 'prom-client';
import { countDropped, createExportMetrics, DROP_REASONS } from '../../../src/telemetry/export/export-metrics.js';
import { metric } from '../../support/export.js';

t.test('every export metric is registered under its documented name', async (t) => {
  const registry = new Registry();
  const m = createExportMetrics(registry);
  const names = registry
    .getMetricsAsArray()
    .map((x) => x.name)
    .sort();
  t.same(names, [
    'gitlab_otel_auth_token_failures_total',
    'gitlab_otel_auth_token_refreshes_total',
    'gitlab_otel_export_duration_seconds',
    'gitlab_otel_export_endpoint_up',
    'gitlab_otel_export_queue_bytes',
    'gitlab_otel_export_queue_spans',
    'gitlab_otel_spans_dropped_total',
    'gitlab_otel_spans_enqueued_total',
    'gitlab_otel_spans_exported_total',
    'gitlab_otel_spans_retried_total',
    'gitlab_otel_spool_bytes',
    'gitlab_otel_spool_corrupt_records_total',
  ]);
  m.exportSeconds.observe({ endpoint: 'e', outcome: 'ok' }, 0.02);
  const text = await registry.metrics();
  t.match(text, /gitlab_otel_export_duration_seconds_bucket\{le="0\.025",endpoint="e",outcome="ok"\} 1/);
  t.match(text, /gitlab_otel_export_duration_seconds_bucket\{le="0\.01",endpoint="e",outcome="ok"\} 0/);
  t.throws(() => createExportMetrics(registry), 'a second set on the same registry is refused by prom-client');
});

t.test('countDropped: by endpoint and reason, zero is not a sample', async (t) => {
  const registry = new Registry();
  const { dropped } = createExportMetrics(registry);
  countDropped(dropped, 'a', 'queue_full', 0);
  t.notMatch(await registry.metrics(), /gitlab_otel_spans_dropped_total\{/, 'no series for a drop of nothing');
  countDropped(dropped, 'a', 'queue_full', 3);
  countDropped(dropped, 'a', 'queue_full', 2);
  countDropped(dropped, 'b', 'max_age', 1);
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { endpoint: 'a', reason: 'queue_full' }), 5);
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { endpoint: 'b', reason: 'max_age' }), 1);
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'max_age', endpoint: 'a' }), 0);
  t.equal(new Set(DROP_REASONS).size, DROP_REASONS.length, 'reasons are distinct');
});
