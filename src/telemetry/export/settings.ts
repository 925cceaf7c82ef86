// The validated, in-memory export settings. The YAML config loader produces
// these (durations in ms, sizes in bytes, file paths as given); everything under
// src/telemetry/export and src/telemetry/auth trusts them without re-checking.
// GitLab's own payload endpoints (features.tracing.otel_endpoints) are turned
// into the same shape by `endpointFromPayload`.

import { decidePayloadEndpoint, type EgressPolicy, type EgressRefusal, type EgressVerdict } from './egress-policy.js';

export type Compression = 'gzip' | 'none';

/** OTLP transport, named as OTEL_EXPORTER_OTLP_PROTOCOL names it (docs/export.md#transports). */
export type OtlpProtocol = 'grpc' | 'http/protobuf';
export const OTLP_PROTOCOLS: readonly OtlpProtocol[] = ['grpc', 'http/protobuf'];

export interface TlsSettings {
  /** PEM bundle to trust instead of the system roots. */
  readonly caFile?: string;
  /** mTLS client certificate and key (both or neither). */
  readonly certFile?: string;
  readonly keyFile?: string;
  /** Accept any server certificate. For labs only. */
  readonly insecureSkipVerify: boolean;
}

export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const GCP_METADATA_IDENTITY_URL = 'http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity';

/** How the client authenticates to the token endpoint (both OIDC flows). */
export type OidcClientAuth =
  | { readonly method: 'client_secret'; readonly clientSecretFile: string }
  | { readonly method: 'private_key_jwt'; readonly privateKeyFile: string; readonly keyId?: string }
  /** Public client: only sensible for token exchange, where the subject token is the credential. */
  | { readonly method: 'none' };

interface OidcCommon {
  /** Issuer for discovery; either this or `tokenEndpoint`. */
  readonly issuer?: string;
  /** Skip discovery and post straight to this token endpoint. */
  readonly tokenEndpoint?: string;
  readonly clientId: string;
  readonly clientAuth: OidcClientAuth;
  readonly scope?: string;
  readonly resource?: string;
  readonly audience?: string;
}

export type AuthSettings =
  | { readonly type: 'none' }
  | ({ readonly type: 'oidc_client_credentials' } & OidcCommon)
  | ({
      readonly type: 'oidc_token_exchange';
      /** Re-read before every exchange: projected service-account tokens rotate on disk. */
      readonly subjectTokenFile: string;
      /** Default TOKEN_TYPE_JWT. */
      readonly subjectTokenType: string;
    } & OidcCommon)
  | {
      readonly type: 'gcp_workload_identity';
      readonly audience: string;
      /** Default GCP_METADATA_IDENTITY_URL; tests point it at a loopback simulator. */
      readonly metadataUrl: string;
    };

export type AuthType = AuthSettings['type'];

export interface QueueSettings {
  readonly maxSpans: number;
  readonly maxBytes: number;
  /** Spans older than this (since they were submitted) are dropped, reason `max_age`. */
  readonly maxAgeMs: number;
  readonly batchSize: number;
  /** How long a partial batch waits for company before it is sent. */
  readonly batchDelayMs: number;
  readonly maxConcurrentExports: number;
}

export interface RetrySettings {
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

export interface EndpointSettings {
  /** Used in metrics and logs; never contains credentials. */
  readonly name: string;
  /**
   * Absent or `grpc`: OTLP/gRPC, `url` is `http://host:port` (plaintext) or `https://host:port` (TLS).
   * `http/protobuf`: OTLP/HTTP, `url` is the full URL posted to (e.g. `https://host:4318/v1/traces`).
   * Absent rather than `grpc` in settings written before OTLP/HTTP existed.
   */
  readonly protocol?: OtlpProtocol;
  readonly url: string;
  readonly compression: Compression;
  /** Deadline of one export call. */
  readonly timeoutMs: number;
  /** Static gRPC metadata sent with every export (from config or OTEL_EXPORTER_OTLP_HEADERS). */
  readonly headers: Readonly<Record<string, string>>;
  readonly tls?: TlsSettings;
  /** Allow bearer tokens over plaintext to a non-loopback host. */
  readonly allowInsecureAuth: boolean;
  readonly auth: AuthSettings;
  readonly queue: QueueSettings;
  readonly retry: RetrySettings;
  /**
   * Payload endpoints only: the egress policy's verdict on this host, applied
   * again to every address it resolves to at connect time (docs/security.md#payload-endpoints).
   */
  readonly egress?: EgressVerdict;
}

export interface SpoolSettings {
  readonly dir: string;
  readonly maxBytes: number;
}

export type SamplerName =
  'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';

export interface SamplingSettings {
  readonly sampler: SamplerName;
  /** 0..1, used by the *traceidratio samplers. */
  readonly ratio: number;
  /** Spans held per unsampled job until its outcome is known (failed jobs are always kept). */
  readonly maxHeldSpansPerJob: number;
  /** Total held spans across jobs. */
  readonly maxHeldSpans: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_QUEUE: QueueSettings = {
  maxSpans: 20_000,
  maxBytes: 64 * MiB,
  maxAgeMs: 10 * 60_000,
  batchSize: 512,
  batchDelayMs: 1000,
  maxConcurrentExports: 2,
};

export const DEFAULT_RETRY: RetrySettings = { initialBackoffMs: 1000, maxBackoffMs: 30_000 };
export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_SPOOL_MAX_BYTES = 256 * MiB;
export const DEFAULT_SAMPLING: SamplingSettings = {
  sampler: 'parentbased_always_on',
  ratio: 1,
  maxHeldSpansPerJob: 2000,
  maxHeldSpans: 50_000,
};
/** Endpoints created on demand from job payloads, at most this many at once. */
export const MAX_PAYLOAD_ENDPOINTS = 16;

/** GitLab's `features.tracing.otel_endpoints[]` entry, as on the wire (runner `common/spec/spec.go`). */
export interface PayloadOtelEndpoint {
  readonly url: string;
  readonly auth?: {
    readonly type: string;
    readonly http_bearer_gcp_oidc?: { readonly audience: string };
  };
}

export class ExportSettingsError extends Error {
  constructor(
    readonly code: 'UNSUPPORTED_ENDPOINT_SCHEME' | 'UNSUPPORTED_AUTH_TYPE' | 'INVALID_ENDPOINT_URL' | 'EGRESS_REFUSED',
    message: string,
  ) {
    super(message);
    this.name = 'ExportSettingsError';
  }
}

export type PayloadEndpointResult =
  | { readonly ok: true; readonly endpoint: EndpointSettings }
  | { readonly ok: false; readonly error: ExportSettingsError; readonly refusal?: EgressRefusal };

/**
 * Turns a payload endpoint into EndpointSettings, with the schemes the runner
 * serves (docs/export.md#payload-endpoints): `http://` / `https://` are
 * OTLP/HTTP posted to the URL as given (path included), `grpc://` (plaintext)
 * and `grpcs://` (TLS) are OTLP/gRPC to the host (path ignored).
 */
export function endpointFromPayload(
  entry: PayloadOtelEndpoint,
  defaults: { queue?: QueueSettings; retry?: RetrySettings; timeoutMs?: number; metadataUrl?: string; egress?: EgressPolicy } = {},
): PayloadEndpointResult {
  let parsed: URL;
  try {
    parsed = new URL(entry.url);
  } catch {
    return { ok: false, error: new ExportSettingsError('INVALID_ENDPOINT_URL', 'payload OTLP endpoint URL does not parse') };
  }
  const scheme = parsed.protocol.replace(/:$/, '');
  if (scheme !== 'grpc' && scheme !== 'grpcs' && scheme !== 'http' && scheme !== 'https') {
    return {
      ok: false,
      error: new ExportSettingsError(
        'UNSUPPORTED_ENDPOINT_SCHEME',
        `payload OTLP endpoint scheme '${scheme}' is not one of http://, https:// (OTLP/HTTP), grpc://, grpcs:// (OTLP/gRPC)`,
      ),
    };
  }
  if (parsed.username || parsed.password) {
    return { ok: false, error: new ExportSettingsError('INVALID_ENDPOINT_URL', 'payload OTLP endpoint URL carries credentials') };
  }
  const httpTransport = scheme === 'http' || scheme === 'https';
  const tls = scheme === 'grpcs' || scheme === 'https';
  const port = httpTransport ? parsed.port : parsed.port || '4317';
  const hostPort = port ? `${parsed.hostname}:${port}` : parsed.hostname;
  const url = httpTransport
    ? // The runner posts to scheme://host + path only (WithURLPath); the query is dropped there too.
      `${scheme}://${parsed.host}${parsed.pathname}`
    : `${tls ? 'https' : 'http'}://${parsed.hostname}:${port}`;
  let auth: AuthSettings = { type: 'none' };
  if (entry.auth) {
    const audience = entry.auth.http_bearer_gcp_oidc?.audience;
    if (entry.auth.type !== 'http_bearer_gcp_oidc' || !audience) {
      return {
        ok: false,
        error: new ExportSettingsError('UNSUPPORTED_AUTH_TYPE', `payload OTLP endpoint auth type '${entry.auth.type}' is not supported`),
      };
    }
    auth = { type: 'gcp_workload_identity', audience, metadataUrl: defaults.metadataUrl ?? GCP_METADATA_IDENTITY_URL };
  }
  // The payload chooses where the proxy connects and which token it mints: the policy decides first.
  const egress = decidePayloadEndpoint(defaults.egress ?? {}, {
    host: parsed.hostname,
    port: Number(port || (tls ? 443 : 80)),
    tls,
    ...(auth.type === 'gcp_workload_identity' ? { audience: auth.audience } : {}),
  });
  if (!egress.allowed) {
    return {
      ok: false,
      error: new ExportSettingsError(
        'EGRESS_REFUSED',
        `payload OTLP endpoint ${scheme}://${hostPort} refused by the egress policy (${egress.reason})`,
      ),
      refusal: egress.reason,
    };
  }
  return {
    ok: true,
    endpoint: {
      name: `payload:${hostPort}${httpTransport ? parsed.pathname : ''}`,
      ...(httpTransport ? { protocol: 'http/protobuf' as const } : {}),
      url,
      compression: 'gzip',
      timeoutMs: defaults.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      headers: {},
      allowInsecureAuth: false,
      auth,
      queue: defaults.queue ?? DEFAULT_QUEUE,
      retry: defaults.retry ?? DEFAULT_RETRY,
      ...(tls ? { tls: { insecureSkipVerify: false } } : {}),
      egress,
    },
  };
}

/**
 * Identity of an endpoint for on-demand creation: two jobs naming the same
 * collector with the same credentials share one queue. Holds no secrets (file
 * paths and audiences only).
 */
export function endpointKey(e: EndpointSettings): string {
  // Asked for on every submit (twice): settings are immutable, so a settings object's key is computed once.
  let key = endpointKeys.get(e);
  if (key === undefined) {
    // gRPC endpoints keep the key (and so the spool directory) they had before OTLP/HTTP existed.
    const parts: unknown[] = [e.url, e.auth, e.tls ?? null, e.headers];
    if (e.protocol === 'http/protobuf') parts.push(e.protocol);
    key = JSON.stringify(parts);
    endpointKeys.set(e, key);
  }
  return key;
}
const endpointKeys = new WeakMap<EndpointSettings, string>();
