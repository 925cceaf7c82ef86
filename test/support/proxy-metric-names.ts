// The Prometheus names the proxy's own metrics really have, with the label values they are counted with: the
// product's registrations (createProxyMetrics, createExportMetrics, payloadEgress, TelemetryWorkerHost) on one
// prom-client Registry, as runtime.ts assembles them, served by registry.metrics() and parsed with a real
// text-format parser. A labelled prom-client counter serves no sample (so no label) until it is counted, so each is
// counted once per label value: through the product where that is cheap (egress refusals at the payload and at
// connect time, exchanges posted to a telemetry worker that is not running), from the product's own types elsewhere
// (a Record over a union fails to compile when the union changes). Dashboards and alerts are checked against this
// set (test/runner-config/examples.test.ts), so a rename or a label change breaks the build.
import { Registry } from 'prom-client';
import { envDefaults } from '../../src/runner-proxy/config/load.js';
import { validateConfig } from '../../src/runner-proxy/config/schema.js';
import type { LimitName } from '../../src/runner-proxy/http/server.js';
import { createProxyMetrics } from '../../src/runner-proxy/metrics.js';
import { payloadEgress } from '../../src/runner-proxy/payload-egress.js';
import { FollowedJobs } from '../../src/runner-proxy/telemetry-thread/followed-jobs.js';
import { TelemetryWorkerHost } from '../../src/runner-proxy/telemetry-thread/worker-host.js';
import type { LeftToRunnerReason } from '../../src/runner-proxy/wire/negotiation.js';
import { EgressRefusedError, reportEgressRefusal, type EgressRefusal } from '../../src/telemetry/export/egress-policy.js';
import { countDropped, createExportMetrics, DROP_REASONS } from '../../src/telemetry/export/export-metrics.js';
import { parseExposition } from './prometheus-text.js';

export interface ServedProxyMetrics {
  /** Family names as served, plus the _bucket/_sum/_count series of histograms. */
  readonly series: ReadonlySet<string>;
  /** Label names per series name. */
  readonly labels: ReadonlyMap<string, ReadonlySet<string>>;
  /** Values served per series and label: `values.get('gitlab_otel_proxy_limit_hits_total')?.get('limit')`. */
  readonly values: ReadonlyMap<string, ReadonlyMap<string, ReadonlySet<string>>>;
}

const LIMITS: Record<LimitName, true> = {
  connections: true,
  client_connections: true,
  idle_connection: true,
  buffered_bytes: true,
  stalled_connection: true,
  payload_bytes: true,
};

const LEFT_TO_RUNNER: Record<LeftToRunnerReason, true> = {
  unsupported_scheme: true,
  unsupported_auth: true,
  invalid_url: true,
  egress_policy: true,
  refused: true,
  not_served_by_config: true,
};

const EGRESS_REFUSALS: Record<EgressRefusal, true> = {
  host_not_allowed: true,
  audience_not_allowed: true,
  plaintext_token: true,
  loopback: true,
  link_local: true,
  private: true,
  metadata: true,
  unspecified: true,
  reserved: true,
};

/**
 * The routes and reasons tracker.ts (`authenticated`, `observesTracePatch`) and thread-observer.ts count
 * unauthenticated exchanges with (docs/security.md#job-tokens); they are string literals there, not a type.
 */
const UNAUTHENTICATED = [
  { route: 'job_update', reason: 'token_mismatch' },
  { route: 'job_update', reason: 'token_unknown' },
  { route: 'trace_patch', reason: 'token_mismatch' },
  { route: 'trace_patch', reason: 'token_unknown' },
] as const;

export async function servedProxyMetrics(): Promise<ServedProxyMetrics> {
  const registry = new Registry();
  const proxy = createProxyMetrics(registry);
  const exporting = createExportMetrics(registry);
  const egress = payloadEgress({ egress: {} }, registry, () => undefined);
  const config = validateConfig(
    { upstream: { url: 'http://127.0.0.1:9' }, admin: null, telemetry: { thread: 'worker' }, metrics: { enabled: false } },
    envDefaults({}).defaults,
  );
  // Never started: no worker thread; a post is dropped as worker_down, as after the worker died.
  const host = new TelemetryWorkerHost({ config, log: () => undefined, registry, followed: new FollowedJobs(), maxInFlightBytes: 1 });
  try {
    proxy.requests.inc({ route: 'job_request', status: '201' });
    proxy.upstreamLatency.observe({ route: 'job_request' }, 0.01);
    proxy.upstreamErrors.inc({ route: 'job_request', kind: 'connect' });
    for (const limit of Object.keys(LIMITS)) proxy.limitHits!.inc({ limit });
    for (const labels of UNAUTHENTICATED) proxy.unauthenticated!.inc(labels);
    proxy.jobs.inc({ contract: 'tracing', result: 'success' });
    proxy.routerDiscoveryDeclined!.inc();
    for (const reason of Object.keys(LEFT_TO_RUNNER)) proxy.payloadEndpointsLeftToRunner!.inc({ reason });
    proxy.negotiation.inc({ outcome: 'tracing' });
    // Payload stage, through the policy: a metadata address as GitLab could name it.
    egress.servesEndpoint({ url: 'https://169.254.169.254:4318' });
    // Connect stage, as the transports report a name that resolved to a refused address.
    for (const reason of Object.keys(EGRESS_REFUSALS) as EgressRefusal[])
      reportEgressRefusal(new EgressRefusedError('collector.example', reason));
    for (const reason of DROP_REASONS) countDropped(exporting.dropped, 'collector', reason, 1);
    exporting.exported.inc({ endpoint: 'collector' });
    exporting.endpointUp.set({ endpoint: 'collector' }, 1);
    exporting.tokenFailures.inc({ endpoint: 'collector' });
    host.post({ type: 'trace-patch', jobId: 1, body: new ArrayBuffer(0), status: 202, at: 1n });
  } finally {
    egress.close();
    await host.stop(0);
  }
  const exposition = parseExposition(await registry.metrics());
  const series = new Set<string>();
  const labels = new Map<string, Set<string>>();
  const values = new Map<string, Map<string, Set<string>>>();
  for (const f of exposition.families) series.add(f.name);
  for (const s of exposition.series) {
    series.add(s.name);
    const keys = labels.get(s.name) ?? new Set<string>();
    const byLabel = values.get(s.name) ?? new Map<string, Set<string>>();
    for (const [k, v] of Object.entries(s.labels)) {
      keys.add(k);
      byLabel.set(k, (byLabel.get(k) ?? new Set<string>()).add(v));
    }
    labels.set(s.name, keys);
    values.set(s.name, byLabel);
  }
  return { series, labels, values };
}
