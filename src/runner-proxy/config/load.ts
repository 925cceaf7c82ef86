// Loading the runner-proxy configuration: the YAML file, the standard OTEL_*
// environment variables beneath it, and command-line overrides above it.
import { readFileSync } from 'node:fs';
import { YAMLParseError, parse } from 'yaml';
import { otlpHeadersFromEnv, parseOtlpHeaders } from '../../telemetry/auth/headers.js';
import { samplingFromEnv } from '../../telemetry/sampling.js';
import { endpointFromEnv, protocolFromEnv } from '../../telemetry/export/env-endpoint.js';
import { metricExportFromEnv, MetricEnvError, type MetricExportSettings } from '../../telemetry/metrics/metric-env.js';
import { ConfigError, validateConfig, type EnvDefaults, type ProxyConfig } from './schema.js';

export interface Overrides {
  listen?: string;
  upstream?: string;
  adminListen?: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

export function envDefaults(env: Env): { defaults: EnvDefaults; warnings: string[] } {
  const warnings: string[] = [];
  const headers = otlpHeadersFromEnv(env);
  if (headers.invalid.length > 0) {
    warnings.push(`OTEL_EXPORTER_OTLP_HEADERS: entries ${headers.invalid.join(', ')} are not key=value and were skipped`);
  }
  // OTEL_RESOURCE_ATTRIBUTES has the same k=v,k=v percent-encoded form as the headers variable.
  const resource = parseOtlpHeaders(env.OTEL_RESOURCE_ATTRIBUTES);
  const sampling = samplingFromEnv(env);
  warnings.push(...sampling.warnings);
  const endpoint = endpointFromEnv(env);
  let metricExport: MetricExportSettings | { variable: string; message: string };
  try {
    metricExport = metricExportFromEnv(env);
  } catch (err) {
    if (!(err instanceof MetricEnvError)) throw err;
    // Reported by validateConfig with the other problems, under the variable's name.
    metricExport = { variable: err.variable, message: err.message.slice(err.variable.length + 2) };
  }
  return {
    defaults: {
      endpoint: endpoint?.url,
      ...(endpoint ? { endpointVariable: endpoint.variable, endpointPerSignal: endpoint.perSignal } : {}),
      protocol: protocolFromEnv(env),
      headers: headers.headers,
      serviceName: env.OTEL_SERVICE_NAME || undefined,
      resourceAttributes: resource.headers,
      sampling: sampling.settings,
      metricsEndpoint: env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT?.trim() || undefined,
      genericEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || undefined,
      metricExport,
    },
    warnings,
  };
}

/** Reads and parses a YAML file into a plain document. Throws ConfigError. */
export function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      'CONFIG_UNREADABLE',
      [{ path: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }],
      file,
    );
  }
  try {
    return parse(text, { uniqueKeys: true });
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const pos = err.linePos?.[0];
      const at = pos ? `line ${pos.line}, column ${pos.col}` : '';
      throw new ConfigError('CONFIG_SYNTAX', [{ path: at, message: err.message.split('\n')[0]! }], file);
    }
    throw err;
  }
}

export function loadConfig(file: string | undefined, env: Env, overrides: Overrides = {}): { config: ProxyConfig; warnings: string[] } {
  const doc = file ? readYaml(file) : {};
  const merged: Record<string, unknown> =
    doc && typeof doc === 'object' && !Array.isArray(doc) ? { ...(doc as Record<string, unknown>) } : { __not_a_mapping: doc };
  if (merged.__not_a_mapping !== undefined) {
    throw new ConfigError('CONFIG_INVALID', [{ path: '', message: 'the configuration must be a YAML mapping' }], file);
  }
  if (overrides.listen) merged.listen = overrides.listen;
  if (overrides.adminListen) merged.admin = overrides.adminListen;
  if (overrides.upstream) {
    const upstream = merged.upstream && typeof merged.upstream === 'object' ? (merged.upstream as Record<string, unknown>) : {};
    merged.upstream = { ...upstream, url: overrides.upstream };
  }
  const { defaults, warnings } = envDefaults(env);
  return { config: validateConfig(merged, defaults, file), warnings };
}
