// Where OTLP metrics go: by default the configured trace endpoints (never the
// collectors a job payload names: GitLab's asked for traces), with the metrics
// URL derived the way the trace URL was (docs/metrics.md#export):
//  - OTLP/gRPC: the same channel, the MetricsService method (otlp-client.ts);
//  - OTLP/HTTP from OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: that URL as is;
//  - OTLP/HTTP from the generic OTEL_EXPORTER_OTLP_ENDPOINT: `v1/metrics` appended, as `v1/traces` is;
//  - OTLP/HTTP from a configured full URL ending in `/v1/traces`: the same URL ending in `/v1/metrics`.
// Any other OTLP/HTTP URL names no metrics path we could honestly guess: that
// endpoint gets no metrics, and the caller says so once at start.
// Pure: settings in, settings out.
import { appendSignalPath, METRICS_PATH, TRACES_PATH } from '../export/env-endpoint.js';
import type { EndpointSettings } from '../export/settings.js';

export interface MetricEndpointEnv {
  /** OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: used as is for the endpoint made from the environment. */
  readonly metricsEndpoint?: string;
  /** OTEL_EXPORTER_OTLP_ENDPOINT: `v1/metrics` appended over OTLP/HTTP. */
  readonly genericEndpoint?: string;
  /** The name of the endpoint made from the environment (absent: every endpoint came from the file). */
  readonly envEndpointName?: string;
}

export interface MetricEndpoints {
  readonly endpoints: EndpointSettings[];
  /** Endpoints that get no metrics, and why (logged at start). */
  readonly skipped: { readonly endpoint: string; readonly reason: string }[];
}

export function metricEndpoints(traceEndpoints: readonly EndpointSettings[], env: MetricEndpointEnv = {}): MetricEndpoints {
  const endpoints: EndpointSettings[] = [];
  const skipped: MetricEndpoints['skipped'] = [];
  for (const e of traceEndpoints) {
    const url = metricsUrl(e, env);
    if (url.ok) endpoints.push(url.url === e.url ? e : { ...e, url: url.url });
    else skipped.push({ endpoint: e.name, reason: url.reason });
  }
  return { endpoints, skipped };
}

function metricsUrl(e: EndpointSettings, env: MetricEndpointEnv): { ok: true; url: string } | { ok: false; reason: string } {
  const fromEnv = env.envEndpointName !== undefined && e.name === env.envEndpointName;
  if (fromEnv && env.metricsEndpoint) return { ok: true, url: env.metricsEndpoint };
  // gRPC ignores the URL's path: the method names the signal.
  if (e.protocol !== 'http/protobuf') return { ok: true, url: e.url };
  if (fromEnv && env.genericEndpoint) {
    try {
      return { ok: true, url: appendSignalPath(env.genericEndpoint, METRICS_PATH) };
    } catch {
      return { ok: false, reason: 'OTEL_EXPORTER_OTLP_ENDPOINT does not parse' };
    }
  }
  let u: URL;
  try {
    u = new URL(e.url);
  } catch {
    return { ok: false, reason: 'URL does not parse' };
  }
  const suffix = `/${TRACES_PATH}`;
  const path = u.pathname.replace(/\/+$/, '');
  if (!path.endsWith(suffix)) {
    return {
      ok: false,
      reason: `the OTLP/HTTP URL does not end in ${suffix}, so no metrics URL can be derived (set OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or metrics.endpoints: none)`,
    };
  }
  return { ok: true, url: `${u.protocol}//${u.host}${path.slice(0, -TRACES_PATH.length)}${METRICS_PATH}` };
}
