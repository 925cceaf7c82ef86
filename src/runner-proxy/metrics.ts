// The proxy's own metrics (the export side registers its own on the same registry).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { JobTrackerMetrics } from './job/tracker.js';
import type { ProxyMetrics } from './http/server.js';

export function createProxyMetrics(registry: Registry): ProxyMetrics & JobTrackerMetrics {
  const registers = [registry];
  return {
    requests: new Counter({
      name: 'gitlab_otel_proxy_requests_total',
      help: 'Requests proxied from the runner, by route and upstream status',
      labelNames: ['route', 'status'],
      registers,
    }),
    upstreamLatency: new Histogram({
      name: 'gitlab_otel_upstream_latency_seconds',
      help: 'Time from receiving a runner request to GitLab response headers',
      labelNames: ['route'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30, 60],
      registers,
    }),
    upstreamErrors: new Counter({
      name: 'gitlab_otel_upstream_errors_total',
      help: 'Requests that failed between the proxy and GitLab (unreachable: answered 502)',
      labelNames: ['route', 'kind'],
      registers,
    }),
    limitHits: new Counter({
      name: 'gitlab_otel_proxy_limit_hits_total',
      help: 'Client limits hit on the runner-facing listener (connections, client_connections, idle_connection, buffered_bytes, stalled_connection, payload_bytes)',
      labelNames: ['limit'],
      registers,
    }),
    unauthenticated: new Counter({
      name: 'gitlab_otel_unauthenticated_exchanges_total',
      help: "Job updates and log uploads for a tracked job that did not present that job's token, ignored for telemetry (forwarded as always)",
      labelNames: ['route', 'reason'],
      registers,
    }),
    jobsActive: new Gauge({ name: 'gitlab_otel_jobs_active', help: 'Jobs with telemetry in progress', registers }),
    jobs: new Counter({
      name: 'gitlab_otel_jobs_total',
      help: 'Jobs with telemetry that ended, by contract and result',
      labelNames: ['contract', 'result'],
      registers,
    }),
    routerDiscoveryDeclined: new Counter({
      name: 'gitlab_otel_router_discovery_declined_total',
      help: 'Job Router discovery calls answered 501 by the proxy, so the runner requests jobs through it (job_router: decline)',
      registers,
    }),
    payloadEndpointsLeftToRunner: new Counter({
      name: 'gitlab_otel_payload_endpoints_left_to_runner_total',
      help: "GitLab's per-job collectors (features.tracing.otel_endpoints) the proxy left to the runner's native span, by reason",
      labelNames: ['reason'],
      registers,
    }),
    negotiation: new Counter({
      name: 'gitlab_otel_negotiations_total',
      help: 'Job payloads seen, by negotiation outcome (tracing, job_telemetry, variable, none, invalid, unreadable)',
      labelNames: ['outcome'],
      registers,
    }),
  };
}
