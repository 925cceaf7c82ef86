// How one endpoint's exports are secured. TLS (custom CA, mTLS client cert)
// comes from the endpoint's settings; a bearer token is attached per export.
// On TLS the token goes through grpc-js call credentials, which grpc-js
// evaluates on every RPC. On plaintext grpc-js refuses call credentials, and
// because we own the gRPC call (see export/otlp-client.ts) we pass the token in
// the per-call metadata instead — allowed only to loopback or when the
// endpoint sets allow_insecure_auth, so a token never crosses a network in clear.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { EndpointSettings } from '../export/settings.js';
import { gcpIdentityTokenSource } from './gcp-metadata.js';
import { oidcTokenSource } from './oidc.js';
import { checkPlaintextCredentials } from './plaintext.js';
import { guardedChannel } from '../export/egress-grpc.js';

/** The one strict loopback predicate lives with the address classifier (docs/security.md#plaintext-credentials). */
export { isLoopbackHost } from '../export/egress-policy.js';
import { TokenCache, type TokenEvents, type TokenSource } from './token.js';

export class EndpointConfigError extends Error {
  constructor(
    readonly code: 'INSECURE_AUTH_REFUSED' | 'TLS_FILE_UNREADABLE' | 'INVALID_ENDPOINT_URL',
    message: string,
  ) {
    super(message);
    this.name = 'EndpointConfigError';
  }
}

export interface ChannelPlan {
  /** `host:port` for grpc-js. */
  readonly address: string;
  readonly credentials: grpc.ChannelCredentials;
  readonly tls: boolean;
  readonly tokens?: TokenCache;
  /** Plaintext with a token: the exporter adds `authorization` to each call's metadata. */
  readonly bearerInCallMetadata: boolean;
  readonly channelOptions: grpc.ChannelOptions;
}

export function tokenSourceFor(endpoint: EndpointSettings): TokenSource | undefined {
  const auth = endpoint.auth;
  switch (auth.type) {
    case 'none':
      return undefined;
    case 'oidc_client_credentials':
    case 'oidc_token_exchange':
      return oidcTokenSource(auth);
    case 'gcp_workload_identity':
      return gcpIdentityTokenSource(auth);
  }
}

export function readPem(path: string | undefined, what: string): Buffer | null {
  if (!path) return null;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new EndpointConfigError(
      'TLS_FILE_UNREADABLE',
      `${what} ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

/** The port written in `text`, including one WHATWG URL hides as the scheme's default; '' when none. */
function explicitPort(text: string): string {
  try {
    // A non-special scheme keeps every written port.
    return new URL(text.trim().replace(/^[a-z][a-z0-9+.-]*:/i, 'grpc:')).port;
  } catch {
    return '';
  }
}

/**
 * The plaintext-credential rule for one endpoint about to be planned over `transport` without TLS
 * (docs/security.md#plaintext-credentials): throws INSECURE_AUTH_REFUSED naming what would travel in clear.
 */
export function refusePlaintextCredentials(endpoint: EndpointSettings, hasToken: boolean, transport: 'gRPC' | 'HTTP'): void {
  const clear = checkPlaintextCredentials({
    url: endpoint.url,
    headers: endpoint.headers,
    token: hasToken,
    allowInsecureAuth: endpoint.allowInsecureAuth,
  });
  if (clear.ok) return;
  const what = clear.what === 'auth' ? 'a bearer token' : `static headers (${clear.names.join(', ')})`;
  throw new EndpointConfigError(
    'INSECURE_AUTH_REFUSED',
    `endpoint ${endpoint.name}: ${what} over plaintext ${transport} to a non-loopback host is refused; use https:// or set allow_insecure_auth`,
  );
}

/** Throws EndpointConfigError when the endpoint cannot be used as configured. */
export function planChannel(endpoint: EndpointSettings, events: TokenEvents = {}, source = tokenSourceFor(endpoint)): ChannelPlan {
  let url: URL;
  try {
    url = new URL(endpoint.url);
  } catch {
    throw new EndpointConfigError('INVALID_ENDPOINT_URL', `endpoint ${endpoint.name}: URL does not parse`);
  }
  const tls = url.protocol === 'https:';
  // WHATWG URL drops a port equal to the scheme's default (`https://h:443` has
  // port ''), but for gRPC only 4317 is the default: an explicit :443 or :80
  // must be dialled as written (docs/export.md#transports).
  const port = url.port || explicitPort(endpoint.url) || '4317';
  // A payload endpoint dials only the addresses the egress policy allows (docs/security.md#payload-endpoints).
  const guarded = endpoint.egress?.allowed ? guardedChannel(url.hostname, port, endpoint.egress) : undefined;
  const address = guarded?.target ?? `${url.hostname}:${port}`;
  const tokens = source ? new TokenCache(source, events) : undefined;
  const channelOptions: grpc.ChannelOptions = {
    'grpc.default_compression_algorithm': endpoint.compression === 'gzip' ? 2 : 0,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    // One pooled channel per endpoint; keepalive notices a dead collector between exports.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    // grpc-js backs reconnects off to 120 s by default; a collector back from an
    // outage should see its spans within the endpoint's own retry bound instead.
    'grpc.initial_reconnect_backoff_ms': endpoint.retry.initialBackoffMs,
    'grpc.max_reconnect_backoff_ms': endpoint.retry.maxBackoffMs,
    ...guarded?.options,
  };

  if (!tls) {
    refusePlaintextCredentials(endpoint, !!tokens, 'gRPC');
    return { address, credentials: grpc.credentials.createInsecure(), tls, tokens, bearerInCallMetadata: !!tokens, channelOptions };
  }

  const t = endpoint.tls;
  const ca = readPem(t?.caFile, 'CA file');
  const key = readPem(t?.keyFile, 'client key file');
  const cert = readPem(t?.certFile, 'client certificate file');
  let credentials = grpc.credentials.createSsl(
    ca,
    key,
    cert,
    t?.insecureSkipVerify ? { checkServerIdentity: () => undefined, rejectUnauthorized: false } : undefined,
  );
  if (tokens) {
    const perCall = grpc.credentials.createFromMetadataGenerator((_opts, done) => {
      tokens.get().then(
        (token) => {
          const md = new grpc.Metadata();
          md.set('authorization', `Bearer ${token}`);
          done(null, md);
        },
        (err: Error) => done(err),
      );
    });
    credentials = grpc.credentials.combineChannelCredentials(credentials, perCall);
  }
  return { address, credentials, tls, tokens, bearerInCallMetadata: false, channelOptions };
}
