// The runner-proxy configuration: the YAML file's exact shape, validated into
// typed settings. Every problem names its key path (and the loader adds the
// file), so a typo in a 60-line config is found at once. Unknown keys are
// errors: a misspelt option silently ignored is a misconfiguration nobody sees.
import type { Attributes } from '@opentelemetry/api';
import {
  DEFAULT_QUEUE,
  DEFAULT_RETRY,
  DEFAULT_SAMPLING,
  DEFAULT_SPOOL_MAX_BYTES,
  DEFAULT_TIMEOUT_MS,
  GCP_METADATA_IDENTITY_URL,
  TOKEN_TYPE_JWT,
  type AuthSettings,
  type EndpointSettings,
  type OidcClientAuth,
  type QueueSettings,
  type RetrySettings,
  type SamplerName,
  type SamplingSettings,
  type SpoolSettings,
  type TlsSettings,
  OTLP_PROTOCOLS,
} from '../../telemetry/export/settings.js';
import { appendTracesPath, type EnvProtocol } from '../../telemetry/export/env-endpoint.js';
import { metricEndpoints } from '../../telemetry/metrics/metric-endpoints.js';
import { DEFAULT_METRIC_EXPORT, type MetricExportSettings } from '../../telemetry/metrics/metric-env.js';
import type { NativeRunnerSpan, NegotiationPolicy } from '../wire/negotiation.js';
import { TRACE_ID_SCHEMES, type TraceIdScheme } from '../../telemetry/pipeline-ids.js';
import { JOB_ROUTER_MODES, type JobRouterMode } from '../http/routes.js';
import { parseHostPattern, type EgressPolicy, type HostPattern } from '../../telemetry/export/egress-policy.js';
import { checkPlaintextCredentials } from '../../telemetry/auth/plaintext.js';
import { DEFAULT_CLIENT_LIMITS, type ClientLimits } from '../http/server.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface ProxyConfig {
  listen: HostPort;
  upstream: {
    url: URL;
    caFile?: string;
    insecureSkipVerify: boolean;
    headersTimeoutMs: number;
  };
  /** null: no admin listener. */
  admin: HostPort | null;
  /** File holding a bearer token the admin listener requires (docs/security.md#deployment). */
  adminTokenFile?: string;
  /** What clients of the runner-facing listener may take (docs/security.md#client-limits). */
  limits: ClientLimits;
  /** Job Router discovery: `decline` (answer 501 so jobs come through the proxy) or `pass` (docs/runner-protocol.md#job-router). */
  jobRouter: JobRouterMode;
  telemetry: {
    negotiation: NegotiationPolicy;
    nativeRunnerSpan: NativeRunnerSpan;
    usePayloadEndpoints: boolean;
    /** Trace ids of fallback-enabled jobs (docs/runner-protocol.md#trace-ids). */
    traceIds: TraceIdScheme;
    /** Where payload endpoints may point the proxy (docs/security.md#payload-endpoints). */
    payloadEndpoints: EgressPolicy;
    /** Where payload endpoints with `http_bearer_gcp_oidc` auth get their ID token (the GCE metadata server). */
    gcpMetadataUrl: string;
    serviceName: string;
    resourceAttributes: Attributes;
    traceContext: { inject: boolean; otlpEndpoint?: string };
    maxPayloadBytes: number;
    maxSpansPerJob: number;
    maxAttributeLength: number;
    /** A job with no final update is closed this long after its own timeout. */
    abandonAfterMs: number;
    /** A `job_queued` span from enqueue to pick-up, sibling of job_execution (docs/metrics.md#queue-time). */
    queueSpan: boolean;
    /** Where tracking, log parsing, span building and export run (docs/architecture.md#telemetry-thread). */
    thread: TelemetryThread;
  };
  endpoints: EndpointSettings[];
  /** CI/CD metrics from every job the proxy sees (docs/metrics.md). */
  metrics: MetricsConfig;
  spool?: SpoolSettings;
  sampling: SamplingSettings;
  shutdown: { graceMs: number; flushTimeoutMs: number };
  logLevel: 'debug' | 'info' | 'warn' | 'error';
}

/** `main`: on the forwarding event loop; `worker`: in a worker thread (docs/architecture.md#telemetry-thread). */
export type TelemetryThread = 'main' | 'worker';
export const TELEMETRY_THREADS: readonly TelemetryThread[] = ['main', 'worker'];

export interface MetricsConfig {
  enabled: boolean;
  /** Where OTLP metrics go: the trace endpoints with their metrics URL (metric-endpoints.ts), or none. */
  endpoints: EndpointSettings[];
  /** Trace endpoints that get no metrics, and why (logged at start). */
  skippedEndpoints: { endpoint: string; reason: string }[];
  projectAttribute: boolean;
  pipelineNameAttribute: boolean;
  maxAttributeValues: number;
  /** The runner manager's `concurrent`, for job-slot utilisation. */
  concurrent?: number;
  /** OTEL_METRIC_EXPORT_INTERVAL / _TIMEOUT and the temporality preference (metric-env.ts). */
  export: MetricExportSettings;
}

export type ConfigErrorCode = 'CONFIG_INVALID' | 'CONFIG_UNREADABLE' | 'CONFIG_SYNTAX';

export interface ConfigProblem {
  path: string;
  message: string;
}

export class ConfigError extends Error {
  constructor(
    readonly code: ConfigErrorCode,
    readonly problems: ConfigProblem[],
    readonly file?: string,
  ) {
    const where = file ? `${file}: ` : '';
    super(problems.map((p) => `${where}${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n'));
    this.name = 'ConfigError';
  }
}

const MiB = 1024 * 1024;

/** Validation context: collects every problem instead of stopping at the first. */
class Reader {
  readonly problems: ConfigProblem[] = [];

  fail(path: string, message: string): undefined {
    this.problems.push({ path, message });
    return undefined;
  }

  object(path: string, v: unknown, keys: readonly string[]): Record<string, unknown> | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) return this.fail(path, `expected a mapping, got ${kind(v)}`);
    for (const k of Object.keys(v)) {
      if (!keys.includes(k)) this.fail(join(path, k), `unknown key (expected one of: ${keys.join(', ')})`);
    }
    return v as Record<string, unknown>;
  }

  string(path: string, v: unknown): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v === '') return this.fail(path, `expected a non-empty string, got ${kind(v)}`);
    return v;
  }

  bool(path: string, v: unknown): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') return this.fail(path, `expected true or false, got ${kind(v)}`);
    return v;
  }

  int(path: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      return this.fail(path, `expected a whole number from ${min} to ${max}, got ${show(v)}`);
    }
    return v;
  }

  ratio(path: string, v: unknown): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || v < 0 || v > 1) return this.fail(path, `expected a number from 0 to 1, got ${show(v)}`);
    return v;
  }

  oneOf<T extends string>(path: string, v: unknown, values: readonly T[]): T | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || !values.includes(v as T)) {
      return this.fail(path, `expected one of ${values.join(' | ')}, got ${show(v)}`);
    }
    return v as T;
  }

  /** `10s`, `250ms`, `5m`, `1h`, or a number of seconds. */
  duration(path: string, v: unknown): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number' && v >= 0) return v * 1000;
    const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim()) : null;
    if (!m) return this.fail(path, `expected a duration like 500ms, 10s, 5m or 1h, got ${show(v)}`);
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    return Math.round(Number(m[1]) * unit);
  }

  /** `64MiB`, `512KiB`, `1GiB`, `100MB`, or a number of bytes. */
  size(path: string, v: unknown): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
    const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)?$/.exec(v.trim()) : null;
    if (!m) return this.fail(path, `expected a size like 512KiB, 64MiB or 1GiB, got ${show(v)}`);
    const unit = { B: 1, KiB: 1024, MiB: MiB, GiB: 1024 * MiB, KB: 1e3, MB: 1e6, GB: 1e9 }[(m[2] ?? 'B') as 'B'];
    return Math.round(Number(m[1]) * unit);
  }

  url(path: string, v: unknown, schemes: readonly string[]): URL | undefined {
    const s = this.string(path, v);
    if (s === undefined) return undefined;
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      return this.fail(path, `not a URL: ${show(s)}`);
    }
    if (!schemes.includes(url.protocol.replace(/:$/, ''))) {
      return this.fail(path, `expected a ${schemes.join(' or ')} URL, got ${url.protocol}//`);
    }
    if (url.username || url.password) return this.fail(path, 'credentials in the URL are not allowed');
    return url;
  }

  hostPort(path: string, v: unknown): HostPort | undefined {
    const s = this.string(path, v);
    if (s === undefined) return undefined;
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(s);
    if (!m || Number(m[3]) > 65535) return this.fail(path, `expected HOST:PORT (e.g. 127.0.0.1:8080), got ${show(s)}`);
    return { host: m[1] ?? m[2]!, port: Number(m[3]) };
  }

  stringMap(path: string, v: unknown): Record<string, string> | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) return this.fail(path, `expected a mapping of strings, got ${kind(v)}`);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v)) {
      if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') {
        this.fail(join(path, k), `expected a string, got ${kind(val)}`);
      } else out[k] = String(val);
    }
    return out;
  }
}

function join(path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'a mapping' : `${typeof v} ${show(v)}`;
}

function show(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

const TOP_KEYS = [
  'listen',
  'upstream',
  'admin',
  'admin_token_file',
  'limits',
  'job_router',
  'telemetry',
  'endpoints',
  'spool',
  'sampling',
  'shutdown',
  'log_level',
  'metrics',
];

/** What the environment contributes (OTEL_* variables), already parsed by the loader. */
export interface EnvDefaults {
  /** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT. */
  endpoint?: string;
  /** Which of the two it came from; the traces-specific URL is used as is (docs/export.md#environment). */
  endpointVariable?: string;
  endpointPerSignal?: boolean;
  /** OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL (unset: grpc). */
  protocol?: EnvProtocol;
  /** OTEL_EXPORTER_OTLP_HEADERS (+ _TRACES_). */
  headers: Record<string, string>;
  serviceName?: string;
  resourceAttributes: Record<string, string>;
  sampling: SamplingSettings;
  /** OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (used as is for the environment's endpoint). */
  metricsEndpoint?: string;
  /** OTEL_EXPORTER_OTLP_ENDPOINT, for `v1/metrics` over OTLP/HTTP when the traces-specific variable gave the trace URL. */
  genericEndpoint?: string;
  /** OTEL_METRIC_EXPORT_* and the temporality preference, or the variable that is wrong (absent: the defaults). */
  metricExport?: MetricExportSettings | { readonly variable: string; readonly message: string };
}

function readTls(r: Reader, path: string, v: unknown): TlsSettings | undefined {
  const o = r.object(path, v, ['ca_file', 'cert_file', 'key_file', 'insecure_skip_verify']);
  if (!o) return undefined;
  const tls: TlsSettings = {
    caFile: r.string(join(path, 'ca_file'), o.ca_file),
    certFile: r.string(join(path, 'cert_file'), o.cert_file),
    keyFile: r.string(join(path, 'key_file'), o.key_file),
    insecureSkipVerify: r.bool(join(path, 'insecure_skip_verify'), o.insecure_skip_verify) ?? false,
  };
  if (!!tls.certFile !== !!tls.keyFile) r.fail(path, 'cert_file and key_file go together (mTLS)');
  return tls;
}

const AUTH_TYPES = ['none', 'oidc_client_credentials', 'oidc_token_exchange', 'gcp_workload_identity'] as const;
const AUTH_KEYS = [
  'type',
  'issuer',
  'token_endpoint',
  'client_id',
  'client_secret_file',
  'private_key_file',
  'key_id',
  'scope',
  'resource',
  'audience',
  'subject_token_file',
  'subject_token_type',
  'metadata_url',
];

function readAuth(r: Reader, path: string, v: unknown): AuthSettings {
  const o = r.object(path, v, AUTH_KEYS);
  if (!o) return { type: 'none' };
  const type = r.oneOf(join(path, 'type'), o.type, AUTH_TYPES);
  if (type === undefined) {
    if (o.type === undefined) r.fail(join(path, 'type'), `required (one of ${AUTH_TYPES.join(' | ')})`);
    return { type: 'none' };
  }
  const s = (k: string) => r.string(join(path, k), o[k]);
  if (type === 'none') return { type };
  if (type === 'gcp_workload_identity') {
    const audience = s('audience');
    if (!audience) r.fail(join(path, 'audience'), 'required for gcp_workload_identity');
    const metadataUrl =
      o.metadata_url === undefined
        ? GCP_METADATA_IDENTITY_URL
        : r.url(join(path, 'metadata_url'), o.metadata_url, ['http', 'https'])?.toString();
    return { type, audience: audience ?? '', metadataUrl: metadataUrl ?? GCP_METADATA_IDENTITY_URL };
  }
  const issuer = o.issuer === undefined ? undefined : r.url(join(path, 'issuer'), o.issuer, ['https', 'http'])?.toString();
  const tokenEndpoint =
    o.token_endpoint === undefined ? undefined : r.url(join(path, 'token_endpoint'), o.token_endpoint, ['https', 'http'])?.toString();
  if (!issuer && !tokenEndpoint && o.issuer === undefined && o.token_endpoint === undefined) {
    r.fail(path, 'issuer (for discovery) or token_endpoint is required');
  }
  const clientId = s('client_id');
  if (!clientId && o.client_id === undefined) r.fail(join(path, 'client_id'), 'required');
  const secretFile = s('client_secret_file');
  const keyFile = s('private_key_file');
  if (secretFile && keyFile) r.fail(path, 'client_secret_file and private_key_file are alternatives; give one');
  let clientAuth: OidcClientAuth;
  if (secretFile) clientAuth = { method: 'client_secret', clientSecretFile: secretFile };
  else if (keyFile) clientAuth = { method: 'private_key_jwt', privateKeyFile: keyFile, keyId: s('key_id') };
  else {
    if (type === 'oidc_client_credentials') r.fail(path, 'client_secret_file or private_key_file is required for client credentials');
    clientAuth = { method: 'none' };
  }
  const common = {
    issuer,
    tokenEndpoint,
    clientId: clientId ?? '',
    clientAuth,
    scope: s('scope'),
    resource: s('resource'),
    audience: s('audience'),
  };
  if (type === 'oidc_client_credentials') return { type, ...common };
  const subjectTokenFile = s('subject_token_file');
  if (!subjectTokenFile && o.subject_token_file === undefined) r.fail(join(path, 'subject_token_file'), 'required for oidc_token_exchange');
  return { type, ...common, subjectTokenFile: subjectTokenFile ?? '', subjectTokenType: s('subject_token_type') ?? TOKEN_TYPE_JWT };
}

function readQueue(r: Reader, path: string, v: unknown): QueueSettings {
  const o = r.object(path, v, ['max_spans', 'max_bytes', 'max_age', 'batch_size', 'batch_delay', 'max_concurrent_exports']) ?? {};
  const q: QueueSettings = {
    maxSpans: r.int(join(path, 'max_spans'), o.max_spans, 1) ?? DEFAULT_QUEUE.maxSpans,
    maxBytes: r.size(join(path, 'max_bytes'), o.max_bytes) ?? DEFAULT_QUEUE.maxBytes,
    maxAgeMs: r.duration(join(path, 'max_age'), o.max_age) ?? DEFAULT_QUEUE.maxAgeMs,
    batchSize: r.int(join(path, 'batch_size'), o.batch_size, 1, 10_000) ?? DEFAULT_QUEUE.batchSize,
    batchDelayMs: r.duration(join(path, 'batch_delay'), o.batch_delay) ?? DEFAULT_QUEUE.batchDelayMs,
    maxConcurrentExports:
      r.int(join(path, 'max_concurrent_exports'), o.max_concurrent_exports, 1, 64) ?? DEFAULT_QUEUE.maxConcurrentExports,
  };
  return q;
}

function readRetry(r: Reader, path: string, v: unknown): RetrySettings {
  const o = r.object(path, v, ['initial_backoff', 'max_backoff']) ?? {};
  const retry = {
    initialBackoffMs: r.duration(join(path, 'initial_backoff'), o.initial_backoff) ?? DEFAULT_RETRY.initialBackoffMs,
    maxBackoffMs: r.duration(join(path, 'max_backoff'), o.max_backoff) ?? DEFAULT_RETRY.maxBackoffMs,
  };
  if (retry.maxBackoffMs < retry.initialBackoffMs) r.fail(join(path, 'max_backoff'), 'must not be below initial_backoff');
  return retry;
}

const ENDPOINT_KEYS = [
  'name',
  'protocol',
  'url',
  'compression',
  'timeout',
  'headers',
  'tls',
  'allow_insecure_auth',
  'auth',
  'queue',
  'retry',
];

function readEndpoint(r: Reader, path: string, v: unknown, env: EnvDefaults): EndpointSettings | undefined {
  const o = r.object(path, v, ENDPOINT_KEYS);
  if (!o) {
    if (v === undefined || v === null) r.fail(path, 'expected an endpoint mapping');
    return undefined;
  }
  if (o.url === undefined) r.fail(join(path, 'url'), 'required');
  const url = r.url(join(path, 'url'), o.url, ['http', 'https']);
  // No `protocol:` stays OTLP/gRPC, as before OTLP/HTTP existed; with http/protobuf the URL (path included) is posted to as is.
  const protocol = r.oneOf(join(path, 'protocol'), o.protocol, OTLP_PROTOCOLS) ?? 'grpc';
  const headers = r.stringMap(join(path, 'headers'), o.headers);
  const tls = readTls(r, join(path, 'tls'), o.tls);
  if (url?.protocol === 'http:' && tls) r.fail(join(path, 'tls'), 'set on a plaintext http:// endpoint; use https:// for TLS');
  const allowInsecureAuth = r.bool(join(path, 'allow_insecure_auth'), o.allow_insecure_auth) ?? false;
  const auth = readAuth(r, join(path, 'auth'), o.auth);
  if (url) {
    // Refused here, before anything is resolved or dialled (docs/security.md#plaintext-credentials).
    const fromEnv = headers === undefined || Object.keys(headers).length === 0;
    const clear = checkPlaintextCredentials({
      url: url.toString(),
      headers: { ...env.headers, ...headers },
      token: auth.type !== 'none',
      allowInsecureAuth,
    });
    if (!clear.ok && clear.what === 'auth') {
      r.fail(
        join(path, 'auth'),
        `a bearer token over plaintext ${url.protocol}// to a non-loopback host is refused; use https:// or set allow_insecure_auth`,
      );
    } else if (!clear.ok) {
      r.fail(
        join(path, 'headers'),
        `static headers ${clear.names.join(', ')}${fromEnv ? ' (from OTEL_EXPORTER_OTLP_HEADERS)' : ''} over plaintext ${url.protocol}// to a non-loopback host are refused: they may be credentials; use https:// or set allow_insecure_auth`,
      );
    }
  }
  return {
    name: r.string(join(path, 'name'), o.name) ?? (url ? url.host : 'endpoint'),
    ...(protocol === 'http/protobuf' ? { protocol } : {}),
    url: url ? `${url.protocol}//${url.host}${protocol === 'http/protobuf' ? url.pathname : ''}` : '',
    compression: r.oneOf(join(path, 'compression'), o.compression, ['gzip', 'none'] as const) ?? 'gzip',
    timeoutMs: r.duration(join(path, 'timeout'), o.timeout) ?? DEFAULT_TIMEOUT_MS,
    headers: { ...env.headers, ...headers },
    tls,
    allowInsecureAuth,
    auth,
    queue: readQueue(r, join(path, 'queue'), o.queue),
    retry: readRetry(r, join(path, 'retry'), o.retry),
  };
}

function readStrings(r: Reader, path: string, v: unknown): string[] {
  if (!Array.isArray(v)) {
    r.fail(path, `expected a list of strings, got ${kind(v)}`);
    return [];
  }
  return v.flatMap((x, i) => r.string(join(path, i), x) ?? []);
}

function readHostPatterns(r: Reader, path: string, v: unknown): HostPattern[] {
  return readStrings(r, path, v).flatMap((text, i) => {
    const p = parseHostPattern(text);
    if (!p) r.fail(join(path, i), `expected HOST:PORT, *.DOMAIN:PORT or HOST:* (e.g. otel-collector.monitoring:4317), got ${show(text)}`);
    return p ? [p] : [];
  });
}

const SAMPLERS: readonly SamplerName[] = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
];

/** The `metrics:` section (docs/metrics.md#configuration). */
function readMetrics(
  r: Reader,
  v: unknown,
  traceEndpoints: readonly EndpointSettings[],
  env: EnvDefaults,
  fromEnv: boolean,
): MetricsConfig {
  const m =
    r.object('metrics', v, [
      'enabled',
      'endpoints',
      'project_attribute',
      'pipeline_name_attribute',
      'max_attribute_values',
      'concurrent',
    ]) ?? {};
  const enabled = r.bool('metrics.enabled', m.enabled) ?? true;
  // A list: collectors for metrics alone, each URL posted to as given (as `endpoints:` entries are).
  const listed: EndpointSettings[] | undefined = Array.isArray(m.endpoints) ? [] : undefined;
  if (listed) {
    (m.endpoints as unknown[]).forEach((e, i) => {
      const ep = readEndpoint(r, join('metrics.endpoints', i), e, env);
      if (ep) listed.push(ep);
    });
  }
  const target = listed ? 'listed' : (r.oneOf('metrics.endpoints', m.endpoints, ['same-as-traces', 'none'] as const) ?? 'same-as-traces');
  const derived = !enabled
    ? { endpoints: [], skipped: [] }
    : listed
      ? { endpoints: listed, skipped: [] }
      : target === 'same-as-traces'
        ? metricEndpoints(traceEndpoints, {
            metricsEndpoint: env.metricsEndpoint,
            genericEndpoint: env.genericEndpoint,
            ...(fromEnv && env.endpoint ? { envEndpointName: 'default' } : {}),
          })
        : { endpoints: [], skipped: [] };
  let metricExport = DEFAULT_METRIC_EXPORT;
  if (env.metricExport && 'variable' in env.metricExport) r.fail(env.metricExport.variable, env.metricExport.message);
  else if (env.metricExport) metricExport = env.metricExport;
  const concurrent = r.int('metrics.concurrent', m.concurrent, 1, 100_000);
  return {
    enabled,
    endpoints: derived.endpoints,
    skippedEndpoints: derived.skipped,
    projectAttribute: r.bool('metrics.project_attribute', m.project_attribute) ?? false,
    pipelineNameAttribute: r.bool('metrics.pipeline_name_attribute', m.pipeline_name_attribute) ?? false,
    maxAttributeValues: r.int('metrics.max_attribute_values', m.max_attribute_values, 1, 10_000) ?? 100,
    ...(concurrent !== undefined ? { concurrent } : {}),
    export: metricExport,
  };
}

/** Validates a parsed YAML document (plus environment defaults) into ProxyConfig. Throws ConfigError. */
export function validateConfig(doc: unknown, env: EnvDefaults, file?: string): ProxyConfig {
  const r = new Reader();
  const root = r.object('', doc ?? {}, TOP_KEYS) ?? {};

  const upstream = r.object('upstream', root.upstream, ['url', 'ca_file', 'insecure_skip_verify', 'headers_timeout']) ?? {};
  if (upstream.url === undefined) r.fail('upstream.url', 'required: the GitLab instance the runner talks to');
  const upstreamUrl = r.url('upstream.url', upstream.url, ['https', 'http']);

  const tel =
    r.object('telemetry', root.telemetry, [
      'negotiation',
      'native_runner_span',
      'use_payload_endpoints',
      'trace_ids',
      'payload_endpoints',
      'gcp_metadata_url',
      'service_name',
      'resource_attributes',
      'trace_context',
      'max_payload_bytes',
      'max_spans_per_job',
      'max_attribute_length',
      'abandon_after',
      'queue_span',
      'thread',
    ]) ?? {};
  const tc = r.object('telemetry.trace_context', tel.trace_context, ['inject', 'otlp_endpoint']) ?? {};
  const pe = r.object('telemetry.payload_endpoints', tel.payload_endpoints, ['allowed_hosts', 'allowed_audiences']) ?? {};
  const lim =
    r.object('limits', root.limits, ['max_connections', 'max_connections_per_client', 'max_buffered_bytes', 'idle_timeout']) ?? {};

  const endpoints: EndpointSettings[] = [];
  if (root.endpoints !== undefined && root.endpoints !== null) {
    if (!Array.isArray(root.endpoints)) r.fail('endpoints', `expected a list of endpoints, got ${kind(root.endpoints)}`);
    else
      root.endpoints.forEach((e, i) => {
        const ep = readEndpoint(r, join('endpoints', i), e, env);
        if (ep) endpoints.push(ep);
      });
  } else if (env.endpoint) {
    // docs/export.md#environment: with http/protobuf the generic variable gets /v1/traces appended.
    const variable = env.endpointVariable ?? 'OTEL_EXPORTER_OTLP_ENDPOINT';
    let url = env.endpoint;
    let protocol = 'grpc';
    if (env.protocol && !env.protocol.ok) r.fail(env.protocol.variable, env.protocol.message);
    else if (env.protocol) protocol = env.protocol.protocol;
    if (protocol === 'http/protobuf' && !env.endpointPerSignal) {
      try {
        url = appendTracesPath(url);
      } catch {
        // Not a URL: readEndpoint names the problem.
      }
    }
    const ep = readEndpoint(r, variable, { name: 'default', url, ...(protocol === 'grpc' ? {} : { protocol }) }, env);
    if (ep) endpoints.push(ep);
  }
  const names = new Set<string>();
  for (const [i, e] of endpoints.entries()) {
    if (names.has(e.name)) r.fail(join(join('endpoints', i), 'name'), `duplicate endpoint name '${e.name}'`);
    names.add(e.name);
  }

  const spoolO = r.object('spool', root.spool, ['dir', 'max_bytes']);
  let spool: SpoolSettings | undefined;
  if (spoolO) {
    const dir = r.string('spool.dir', spoolO.dir);
    if (!dir && spoolO.dir === undefined) r.fail('spool.dir', 'required when spool is set');
    spool = { dir: dir ?? '', maxBytes: r.size('spool.max_bytes', spoolO.max_bytes) ?? DEFAULT_SPOOL_MAX_BYTES };
  }

  const samp = r.object('sampling', root.sampling, ['sampler', 'ratio', 'max_held_spans_per_job', 'max_held_spans']) ?? {};
  const sampling: SamplingSettings = {
    sampler: r.oneOf('sampling.sampler', samp.sampler, SAMPLERS) ?? env.sampling.sampler,
    ratio: r.ratio('sampling.ratio', samp.ratio) ?? env.sampling.ratio,
    maxHeldSpansPerJob: r.int('sampling.max_held_spans_per_job', samp.max_held_spans_per_job, 0) ?? DEFAULT_SAMPLING.maxHeldSpansPerJob,
    maxHeldSpans: r.int('sampling.max_held_spans', samp.max_held_spans, 0) ?? DEFAULT_SAMPLING.maxHeldSpans,
  };

  const shut = r.object('shutdown', root.shutdown, ['grace', 'flush_timeout']) ?? {};
  const otlpEndpoint =
    tc.otlp_endpoint === undefined
      ? undefined
      : r.url('telemetry.trace_context.otlp_endpoint', tc.otlp_endpoint, ['http', 'https', 'grpc', 'grpcs'])?.toString();
  const config: ProxyConfig = {
    listen: r.hostPort('listen', root.listen) ?? { host: '127.0.0.1', port: 8080 },
    upstream: {
      url: upstreamUrl ?? new URL('https://invalid.example'),
      caFile: r.string('upstream.ca_file', upstream.ca_file),
      insecureSkipVerify: r.bool('upstream.insecure_skip_verify', upstream.insecure_skip_verify) ?? false,
      headersTimeoutMs: r.duration('upstream.headers_timeout', upstream.headers_timeout) ?? 11 * 60_000,
    },
    admin: root.admin === null || root.admin === false ? null : (r.hostPort('admin', root.admin) ?? { host: '127.0.0.1', port: 9464 }),
    adminTokenFile: r.string('admin_token_file', root.admin_token_file),
    limits: {
      maxConnections: r.int('limits.max_connections', lim.max_connections, 1) ?? DEFAULT_CLIENT_LIMITS.maxConnections,
      maxConnectionsPerClient:
        r.int('limits.max_connections_per_client', lim.max_connections_per_client, 1) ?? DEFAULT_CLIENT_LIMITS.maxConnectionsPerClient,
      maxBufferedBytes: r.size('limits.max_buffered_bytes', lim.max_buffered_bytes) ?? DEFAULT_CLIENT_LIMITS.maxBufferedBytes,
      idleTimeoutMs: r.duration('limits.idle_timeout', lim.idle_timeout) ?? DEFAULT_CLIENT_LIMITS.idleTimeoutMs,
    },
    jobRouter: r.oneOf('job_router', root.job_router, JOB_ROUTER_MODES) ?? 'decline',
    telemetry: {
      negotiation: r.oneOf('telemetry.negotiation', tel.negotiation, ['payload', 'payload-or-variable'] as const) ?? 'payload',
      nativeRunnerSpan: r.oneOf('telemetry.native_runner_span', tel.native_runner_span, ['replace', 'keep'] as const) ?? 'replace',
      // Every collector GitLab names gets the job's spans (docs/runner-protocol.md#job-telemetry).
      usePayloadEndpoints: r.bool('telemetry.use_payload_endpoints', tel.use_payload_endpoints) ?? true,
      traceIds: r.oneOf('telemetry.trace_ids', tel.trace_ids, TRACE_ID_SCHEMES) ?? 'gitlab',
      payloadEndpoints: {
        ...(pe.allowed_hosts !== undefined
          ? { allowedHosts: readHostPatterns(r, 'telemetry.payload_endpoints.allowed_hosts', pe.allowed_hosts) }
          : {}),
        ...(pe.allowed_audiences !== undefined
          ? { allowedAudiences: readStrings(r, 'telemetry.payload_endpoints.allowed_audiences', pe.allowed_audiences) }
          : {}),
      },
      gcpMetadataUrl:
        (tel.gcp_metadata_url === undefined
          ? undefined
          : r.url('telemetry.gcp_metadata_url', tel.gcp_metadata_url, ['http', 'https'])?.toString()) ?? GCP_METADATA_IDENTITY_URL,
      serviceName: r.string('telemetry.service_name', tel.service_name) ?? env.serviceName ?? 'gitlab-runner',
      resourceAttributes: { ...env.resourceAttributes, ...r.stringMap('telemetry.resource_attributes', tel.resource_attributes) },
      traceContext: { inject: r.bool('telemetry.trace_context.inject', tc.inject) ?? true, otlpEndpoint },
      maxPayloadBytes: r.size('telemetry.max_payload_bytes', tel.max_payload_bytes) ?? 16 * MiB,
      maxSpansPerJob: r.int('telemetry.max_spans_per_job', tel.max_spans_per_job, 1, 100_000) ?? 1000,
      maxAttributeLength: r.int('telemetry.max_attribute_length', tel.max_attribute_length, 16, 1_000_000) ?? 4096,
      abandonAfterMs: r.duration('telemetry.abandon_after', tel.abandon_after) ?? 3_600_000,
      queueSpan: r.bool('telemetry.queue_span', tel.queue_span) ?? false,
      thread: r.oneOf('telemetry.thread', tel.thread, TELEMETRY_THREADS) ?? 'main',
    },
    endpoints,
    metrics: readMetrics(r, root.metrics, endpoints, env, root.endpoints === undefined || root.endpoints === null),
    spool,
    sampling,
    shutdown: {
      graceMs: r.duration('shutdown.grace', shut.grace) ?? 60_000,
      flushTimeoutMs: r.duration('shutdown.flush_timeout', shut.flush_timeout) ?? 5_000,
    },
    logLevel: r.oneOf('log_level', root.log_level, ['debug', 'info', 'warn', 'error'] as const) ?? 'info',
  };
  if (r.problems.length > 0) throw new ConfigError('CONFIG_INVALID', r.problems, file);
  return config;
}
