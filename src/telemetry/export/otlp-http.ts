// One endpoint's OTLP/HTTP Export call (binary protobuf): a POST of the
// serialised ExportTraceServiceRequest to the endpoint URL as is, through one
// keep-alive agent per endpoint. TLS, mTLS and insecure_skip_verify come from
// the endpoint's settings as for gRPC; a bearer token is fetched from the
// token cache for every request (so a rotating token is always current) and is
// refused over plaintext to a non-loopback host. Redirects are not followed
// (the runner's own client does not either). See docs/export.md#otlphttp.
import * as http from 'node:http';
import * as https from 'node:https';
import { promisify } from 'node:util';
import { constants as zlibConstants, gzip as gzipCb, type ZlibOptions } from 'node:zlib';
import { VERSION } from '../../version.js';
import { EndpointConfigError, readPem, refusePlaintextCredentials, tokenSourceFor } from '../auth/channel.js';
import { TokenCache, type TokenEvents, type TokenSource } from '../auth/token.js';
import type { EndpointSettings } from './settings.js';
import { egressLookup } from './egress-policy.js';
import { classifyHttpStatus, parseRetryAfter } from './retry-policy.js';
import { parseExportResponse, type ExportFailure, type ExportOutcome, type OtlpTransport } from './otlp-transport.js';

const gzip = promisify<Buffer, ZlibOptions, Buffer>(gzipCb);
/**
 * Level 1: on a 510-span batch (94 KiB of protobuf) it gives 9.1 KiB against
 * level 6's 7.9 KiB in a third of the CPU (0.47 vs 1.38 ms), and that CPU is
 * the exporter's main cost after serialisation (docs/export.md#performance).
 */
const GZIP_OPTIONS: ZlibOptions = { level: zlibConstants.Z_BEST_SPEED };

/** A collector's answer is a small protobuf (or an error text); more than this is not read. */
const MAX_RESPONSE_BYTES = 1024 * 1024;
/** Keep-alive sockets per endpoint: the export concurrency is bounded by the queue settings, this only caps a misconfiguration. */
const MAX_SOCKETS = 64;

export interface HttpPlan {
  readonly url: URL;
  readonly tls: boolean;
  readonly agent: http.Agent;
  readonly tokens?: TokenCache;
}

/** Throws EndpointConfigError when the endpoint cannot be used as configured. */
export function planHttp(endpoint: EndpointSettings, events: TokenEvents = {}, source?: TokenSource): HttpPlan {
  let url: URL;
  try {
    url = new URL(endpoint.url);
  } catch {
    throw new EndpointConfigError('INVALID_ENDPOINT_URL', `endpoint ${endpoint.name}: URL does not parse`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new EndpointConfigError('INVALID_ENDPOINT_URL', `endpoint ${endpoint.name}: OTLP/HTTP needs an http:// or https:// URL`);
  }
  const tokenSource = source ?? tokenSourceFor(endpoint);
  const tokens = tokenSource ? new TokenCache(tokenSource, events) : undefined;
  const tls = url.protocol === 'https:';
  if (!tls) {
    // The same rule as gRPC (docs/security.md#plaintext-credentials).
    refusePlaintextCredentials(endpoint, !!tokens, 'HTTP');
    return { url, tls, tokens, agent: new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, ...egressOption(endpoint) }) };
  }
  const t = endpoint.tls;
  const ca = readPem(t?.caFile, 'CA file');
  const key = readPem(t?.keyFile, 'client key file');
  const cert = readPem(t?.certFile, 'client certificate file');
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: MAX_SOCKETS,
    ...egressOption(endpoint),
    ...(ca ? { ca } : {}),
    ...(key && cert ? { key, cert } : {}),
    ...(t?.insecureSkipVerify ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : {}),
  });
  return { url, tls, tokens, agent };
}

/** A payload endpoint's agent dials only the addresses the egress policy allows (docs/security.md#payload-endpoints). */
function egressOption(endpoint: EndpointSettings): { lookup?: ReturnType<typeof egressLookup> } {
  return endpoint.egress?.allowed ? { lookup: egressLookup(endpoint.egress) } : {};
}

function failure(code: string, failureClass: ExportFailure['failure'], message: string, retryDelayMs?: number): ExportFailure {
  return { kind: 'error', code, failure: failureClass, message, ...(retryDelayMs !== undefined ? { retryDelayMs } : {}) };
}

export class OtlpHttpClient implements OtlpTransport {
  readonly protocol = 'http/protobuf';
  private readonly baseHeaders: Record<string, string>;
  private readonly request: typeof http.request;
  /** Gzipped bodies by request body, so a retried batch is compressed once. */
  private readonly compressed = new WeakMap<Buffer, Promise<Buffer>>();
  private closed = false;

  constructor(
    private readonly plan: HttpPlan,
    headers: Readonly<Record<string, string>>,
    private readonly compression: EndpointSettings['compression'],
  ) {
    this.request = plan.tls ? https.request : http.request;
    this.baseHeaders = {
      ...headers,
      'content-type': 'application/x-protobuf',
      'user-agent': `gitlab-otel/${VERSION}`,
      ...(compression === 'gzip' ? { 'content-encoding': 'gzip' } : {}),
    };
  }

  async export(body: Buffer, timeoutMs: number): Promise<ExportOutcome> {
    if (this.closed) return failure('CANCELLED', 'retryable', 'transport closed');
    const headers: Record<string, string> = { ...this.baseHeaders };
    if (this.plan.tokens) {
      try {
        headers.authorization = `Bearer ${await this.plan.tokens.get()}`;
      } catch (err) {
        return failure('UNAUTHENTICATED', 'unauthenticated', (err as Error).message);
      }
    }
    let payload = body;
    if (this.compression === 'gzip') {
      let p = this.compressed.get(body);
      if (!p) {
        p = gzip(body, GZIP_OPTIONS);
        this.compressed.set(body, p);
      }
      try {
        payload = await p;
      } catch (err) {
        return failure('COMPRESSION_FAILED', 'permanent', (err as Error).message);
      }
    }
    headers['content-length'] = String(payload.length);
    const deadline = Date.now() + timeoutMs;
    const first = await this.post(payload, headers, timeoutMs);
    // A kept-alive socket the collector (or a load balancer) closed while idle fails the next request with a reset
    // before any answer. Node's documented remedy: send it again at once on a fresh socket, rather than counting a
    // failure and backing off (the OTLP spec allows the duplicate a real reset may cause).
    if (first === STALE_SOCKET) return this.post(payload, headers, Math.max(1, deadline - Date.now()), true);
    return first;
  }

  private post(payload: Buffer, headers: Record<string, string>, timeoutMs: number, retried = false): Promise<ExportOutcome> {
    const u = this.plan.url;
    return new Promise<ExportOutcome>((resolve) => {
      let settled = false;
      let answered = false;
      const finish = (o: ExportOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(o);
      };
      const req = this.request(
        {
          protocol: u.protocol,
          hostname: u.hostname.replace(/^\[|\]$/g, ''),
          port: u.port || undefined,
          path: `${u.pathname || '/'}${u.search}`,
          method: 'POST',
          agent: this.plan.agent,
          headers,
        },
        (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size <= MAX_RESPONSE_BYTES) chunks.push(c);
          });
          res.on('error', () => finish(failure('ECONNRESET', 'retryable', 'response cut off')));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              try {
                finish(size > MAX_RESPONSE_BYTES ? { kind: 'ok' } : parseExportResponse(Buffer.concat(chunks)));
              } catch {
                // The collector took the data but answered something else (JSON, text): not retryable (we would duplicate).
                finish({ kind: 'ok' });
              }
              return;
            }
            const retryAfter = parseRetryAfter(headerValue(res.headers['retry-after']), Date.now());
            finish(failure(`HTTP_${status}`, classifyHttpStatus(status), `HTTP ${status}`, retryAfter));
          });
        },
      );
      const timer = setTimeout(() => {
        finish(failure('DEADLINE_EXCEEDED', 'retryable', `no answer within ${timeoutMs} ms`));
        req.destroy();
      }, timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (!retried && req.reusedSocket && err.code === 'ECONNRESET' && !answered) return finish(STALE_SOCKET);
        // Connection refused or reset, DNS, TLS verification: the spec's network errors are retryable.
        finish(failure(err.code ?? 'NETWORK_ERROR', 'retryable', err.code ?? 'network error'));
      });
      req.end(payload);
    });
  }

  invalidateToken(): void {
    this.plan.tokens?.invalidate(this.plan.tokens.peek());
  }

  close(): void {
    this.closed = true;
    this.plan.agent.destroy();
  }
}

/** Marks a reset on a reused keep-alive socket before any answer: the caller sends once more. */
const STALE_SOCKET: ExportOutcome = Object.freeze(failure('ECONNRESET', 'retryable', 'kept-alive socket closed by the peer'));

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
