// The standard OTEL_EXPORTER_OTLP_* variables that choose where and how traces
// go, read the way the OpenTelemetry exporter specification defines them
// (docs/export.md#environment). Pure: the proxy's config loader and the in-job
// commands both use it.
import { OTLP_PROTOCOLS, type OtlpProtocol } from './settings.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** The signal path OTLP/HTTP appends to the generic endpoint. */
export const TRACES_PATH = 'v1/traces';
/** The metrics signal's path (docs/metrics.md#export). */
export const METRICS_PATH = 'v1/metrics';

export interface EnvEndpoint {
  readonly url: string;
  /** The variable the URL came from, for messages. */
  readonly variable: string;
  /** True for the traces-specific variable, whose URL is used as is. */
  readonly perSignal: boolean;
}

/** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT (then `fallback`, e.g. GITLAB_OTEL_ENDPOINT, treated as generic). */
export function endpointFromEnv(env: Env, fallbackVariable?: string): EnvEndpoint | undefined {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return { url: traces, variable: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', perSignal: true };
  const generic = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (generic) return { url: generic, variable: 'OTEL_EXPORTER_OTLP_ENDPOINT', perSignal: false };
  const fallback = fallbackVariable ? env[fallbackVariable]?.trim() : undefined;
  if (fallback && fallbackVariable) return { url: fallback, variable: fallbackVariable, perSignal: false };
  return undefined;
}

export type EnvProtocol =
  | { readonly ok: true; readonly protocol: OtlpProtocol; readonly variable?: string }
  | { readonly ok: false; readonly variable: string; readonly message: string };

/** OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL; unset means grpc (what this project always spoke). */
export function protocolFromEnv(env: Env): EnvProtocol {
  const variable = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim()
    ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
    : env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim()
      ? 'OTEL_EXPORTER_OTLP_PROTOCOL'
      : undefined;
  if (!variable) return { ok: true, protocol: 'grpc' };
  const value = env[variable]!.trim();
  if ((OTLP_PROTOCOLS as readonly string[]).includes(value)) return { ok: true, protocol: value as OtlpProtocol, variable };
  const hint = value === 'http/json' ? ' (http/json is not supported)' : '';
  return {
    ok: false,
    variable,
    message: `expected one of ${OTLP_PROTOCOLS.join(' | ')}, got ${JSON.stringify(value.slice(0, 40))}${hint}`,
  };
}

/**
 * The generic endpoint plus `v1/traces`, relative to its path as the spec
 * shows (`http://host:4318/mypath` → `http://host:4318/mypath/v1/traces`).
 * Query and fragment are kept off: the spec's examples have none.
 */
export function appendTracesPath(base: string): string {
  return appendSignalPath(base, TRACES_PATH);
}

/** The generic endpoint plus a signal's path (`v1/traces`, `v1/metrics`), relative to its path. */
export function appendSignalPath(base: string, signalPath: string): string {
  const u = new URL(base);
  const path = u.pathname.endsWith('/') ? u.pathname : `${u.pathname}/`;
  return `${u.protocol}//${u.host}${path}${signalPath}`;
}
