// metrics: the proxy's own Prometheus series, registered on the registry it is given.
import t from 'tap';
import { Registry } from 'prom-client';
import { createProxyMetrics } from '../../src/runner-proxy/metrics.js';

t.test('every series is on the given registry, with its labels', async (t) => {
  const registry = new Registry();
  const m = createProxyMetrics(registry);
  const names = (await registry.getMetricsAsJSON()).map((x) => `${x.name}:${x.type}`).sort();
  t.same(names, [
    'gitlab_otel_jobs_active:gauge',
    'gitlab_otel_jobs_total:counter',
    'gitlab_otel_negotiations_total:counter',
    'gitlab_otel_payload_endpoints_left_to_runner_total:counter',
    'gitlab_otel_proxy_limit_hits_total:counter',
    'gitlab_otel_proxy_requests_total:counter',
    'gitlab_otel_router_discovery_declined_total:counter',
    'gitlab_otel_unauthenticated_exchanges_total:counter',
    'gitlab_otel_upstream_errors_total:counter',
    'gitlab_otel_upstream_latency_seconds:histogram',
  ]);
  m.requests.inc({ route: 'job_request', status: '201' });
  m.upstreamLatency.observe({ route: 'job_request' }, 0.003);
  m.jobs.inc({ contract: 'tracing', result: 'success' });
  const text = await registry.metrics();
  t.match(text, /gitlab_otel_proxy_requests_total\{route="job_request",status="201"\} 1/);
  t.match(text, /gitlab_otel_upstream_latency_seconds_bucket\{le="0.005",route="job_request"\} 1/);
  t.match(text, /gitlab_otel_jobs_total\{contract="tracing",result="success"\} 1/);
  t.throws(() => m.requests.inc({ nope: 'x' } as never), 'labels outside the declared set are refused');
});

t.test('one set per registry: each proxy has its own', async (t) => {
  const registry = new Registry();
  createProxyMetrics(registry);
  t.throws(() => createProxyMetrics(registry), /already been registered/);
  t.doesNotThrow(() => createProxyMetrics(new Registry()), 'another registry is independent');
});
