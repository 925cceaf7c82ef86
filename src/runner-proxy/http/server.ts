// The forwarding path: a streaming HTTP/1.1 reverse proxy to exactly one
// upstream GitLab. Every request the runner makes goes through here untouched
// except for the documented payload edits; bodies stream with backpressure,
// so a multi-GB artifact upload costs constant memory. Telemetry sits beside
// this path (see tee.ts): the runner never waits on it, and nothing it throws
// can reach a response.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Counter, Histogram } from 'prom-client';
import type { Logger } from '../../log.js';
import { nowNanos } from '../../telemetry/spans.js';
import { TEE_LIMITS, classify, type ExchangeObserver, type Route } from './routes.js';

export interface UpstreamOptions {
  url: URL;
  /** PEM CA bundle to trust instead of the system roots. */
  ca?: Buffer;
  /** Disable TLS verification to GitLab. Only ever by explicit configuration. */
  insecureSkipVerify: boolean;
  /** Wait for response headers; the runner itself waits up to 10 min (artifact uploads). */
  headersTimeoutMs: number;
}

export interface ProxyMetrics {
  requests: Counter<'route' | 'status'>;
  upstreamLatency: Histogram<'route'>;
  upstreamErrors: Counter<'route' | 'kind'>;
}

export interface RunnerProxyOptions {
  upstream: UpstreamOptions;
  observer?: ExchangeObserver;
  /** Largest 201 job payload that is read for telemetry; larger ones stream through untouched. */
  maxPayloadBytes: number;
  metrics?: ProxyMetrics;
  log: Logger;
}

// RFC 9110 §7.6.1 hop-by-hop fields, plus the legacy ones proxies must not forward.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function connectionTokens(raw: string[]): Set<string> {
  const tokens = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') {
      for (const t of raw[i + 1]!.split(',')) tokens.add(t.trim().toLowerCase());
    }
  }
  return tokens;
}

/** Raw header pairs minus hop-by-hop fields (and `skip`), keeping order, case and repeats. */
function endToEnd(raw: string[], skip: ReadonlySet<string> = new Set()): string[] {
  const named = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || named.has(name) || skip.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

const REQUEST_SKIP = new Set(['host', 'x-forwarded-for']);
const LENGTH_SKIP = new Set(['content-length']);

function header(raw: string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1];
  return undefined;
}

function isJson(contentType: string | undefined): boolean {
  return !!contentType && /^application\/json\b/i.test(contentType);
}

/** Collects a body's chunks by reference while it streams, up to a limit. */
class BodyTap {
  chunks: Buffer[] = [];
  size = 0;
  overflow = false;
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    if (this.overflow) return;
    this.size += chunk.length;
    if (this.size > this.limit) {
      this.overflow = true;
      this.chunks = [];
      return;
    }
    this.chunks.push(chunk);
  }
  body(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
  }
}

interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  target: string;
  route: Route;
  jobId?: number;
  /** Arrival, epoch ns. */
  at: bigint;
  /** Arrival, monotonic, for latency. */
  started: bigint;
  requestTap?: BodyTap;
}

export class RunnerProxy {
  private readonly server: http.Server;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  private readonly basePath: string;
  private readonly hostHeader: string;
  private readonly inFlight = new Set<http.ServerResponse>();

  constructor(private readonly options: RunnerProxyOptions) {
    const { url } = options.upstream;
    this.transport = url.protocol === 'https:' ? https : http;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.hostHeader = url.host;
    this.agent =
      url.protocol === 'https:'
        ? new https.Agent({
            keepAlive: true,
            scheduling: 'lifo',
            ca: options.upstream.ca,
            rejectUnauthorized: !options.upstream.insecureSkipVerify,
          })
        : new http.Agent({ keepAlive: true, scheduling: 'lifo' });
    this.server = http.createServer(
      {
        // Artifact uploads may stream for an hour; the runner bounds its own requests.
        requestTimeout: 0,
        headersTimeout: 60_000,
        // Longer than the runner's 90 s idle-connection timeout, so the runner,
        // not the proxy, closes idle keep-alive connections (no reuse races).
        keepAliveTimeout: 120_000,
      },
      (req, res) => this.handle(req, res),
    );
    this.server.on('connect', (_req, socket: Socket) => {
      socket.end('HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    this.server.on('upgrade', (_req, socket: Socket) => {
      socket.end('HTTP/1.1 501 Not Implemented\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    this.server.on('clientError', (_err, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  get activeRequests(): number {
    return this.inFlight.size;
  }

  /**
   * Stops accepting connections and waits up to `graceMs` for in-flight
   * requests: a long poll cut short could lose a job GitLab just assigned.
   */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while (this.inFlight.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      this.server.closeIdleConnections();
    }
    this.server.closeAllConnections();
    await closed;
    this.agent.destroy();
  }

  private refuse(res: http.ServerResponse, status: number, message: string): void {
    const body = JSON.stringify({ message: `gitlab-otel: ${message}` });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const at = nowNanos();
    const target = req.url ?? '';
    if (!target.startsWith('/')) {
      // Absolute-form (or '*') targets are what forward proxies get; this is not one.
      this.refuse(res, 400, 'only origin-form request targets are accepted (this is a reverse proxy)');
      this.options.metrics?.requests.inc({ route: 'other', status: '400' });
      req.resume();
      return;
    }
    const q = target.indexOf('?');
    const { route, jobId } = classify(req.method, q < 0 ? target : target.slice(0, q));
    const exchange: Exchange = { req, res, target, route, jobId, at, started: process.hrtime.bigint() };
    this.inFlight.add(res);
    res.on('close', () => this.inFlight.delete(res));
    const metrics = this.options.metrics;
    if (metrics) res.on('finish', () => metrics.requests.inc({ route, status: String(res.statusCode) }));

    const clientIp = req.socket.remoteAddress ?? '';
    const priorXff = header(req.rawHeaders, 'x-forwarded-for');
    const headers = endToEnd(req.rawHeaders, REQUEST_SKIP);
    headers.push('Host', this.hostHeader, 'X-Forwarded-For', priorXff ? `${priorXff}, ${clientIp}` : clientIp);

    const observer = this.options.observer;
    if (observer && route === 'job_request') {
      this.holdJobRequest(exchange, headers, observer);
      return;
    }
    const upstreamReq = this.sendUpstream(exchange, headers);
    if (observer && (route === 'job_update' || route === 'trace_patch')) {
      const tap = new BodyTap(route === 'trace_patch' ? TEE_LIMITS.tracePatch : TEE_LIMITS.jobUpdate);
      exchange.requestTap = tap;
      req.on('data', (chunk: Buffer) => tap.push(chunk));
    }
    req.pipe(upstreamReq);
  }

  /** Opens the upstream request and wires its response back to the runner. */
  private sendUpstream(exchange: Exchange, headers: string[]): http.ClientRequest {
    const { req, res, route, jobId, at } = exchange;
    const { url } = this.options.upstream;
    const metrics = this.options.metrics;
    const observer = this.options.observer;
    const upstreamReq = this.transport.request({
      agent: this.agent,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port || undefined,
      method: req.method,
      path: this.basePath + exchange.target,
      headers: headers as unknown as http.OutgoingHttpHeaders,
      setHost: false,
    });
    let responded = false;
    // Like Go's ResponseHeaderTimeout: counted from the end of the request body.
    // A plain timer, not a socket timeout: a socket timeout is re-armed on every
    // chunk, which costs throughput on multi-GB artifact streams.
    let headersTimer: NodeJS.Timeout | undefined;
    upstreamReq.on('finish', () => {
      if (responded) return;
      headersTimer = setTimeout(
        () => upstreamReq.destroy(new Error('upstream response headers timed out')),
        this.options.upstream.headersTimeoutMs,
      );
    });
    upstreamReq.on('close', () => clearTimeout(headersTimer));
    upstreamReq.on('error', (err) => {
      metrics?.upstreamErrors.inc({ route, kind: responded ? 'aborted' : 'unreachable' });
      if (!res.headersSent) {
        this.options.log('warn', 'upstream request failed', { route, error: err.message });
        this.refuse(res, 502, 'upstream GitLab unreachable');
      } else {
        res.destroy(err);
      }
    });
    req.on('aborted', () => upstreamReq.destroy());
    // A runner that goes away mid-response: stop the upstream side, never crash.
    res.on('error', () => upstreamReq.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstreamReq.destroy();
    });

    upstreamReq.on('response', (upstreamRes) => {
      responded = true;
      clearTimeout(headersTimer);
      metrics?.upstreamLatency.observe({ route }, Number(process.hrtime.bigint() - exchange.started) / 1e9);
      const status = upstreamRes.statusCode ?? 502;
      const rawHeaders = upstreamRes.rawHeaders;
      upstreamRes.on('aborted', () => res.destroy());
      upstreamRes.on('error', () => res.destroy());

      if (observer && route === 'job_request' && status === 201 && isJson(header(rawHeaders, 'content-type'))) {
        this.forwardJobPayload(upstreamRes, res, exchange.requestTap, at, observer);
        return;
      }
      res.writeHead(status, upstreamRes.statusMessage, endToEnd(rawHeaders) as unknown as http.OutgoingHttpHeaders);
      upstreamRes.pipe(res);

      const tap = exchange.requestTap;
      if (observer && tap && jobId !== undefined && (route === 'job_update' || route === 'trace_patch')) {
        res.on('finish', () => {
          if (tap.overflow || !req.complete) return;
          const jobStatus = header(rawHeaders, 'job-status');
          // Telemetry runs after the runner has its answer, and never throws into the proxy.
          setImmediate(() => {
            try {
              if (route === 'job_update') observer.jobUpdate({ jobId, body: tap.body(), status, jobStatus, at });
              else
                observer.tracePatch({
                  jobId,
                  contentRange: header(req.rawHeaders, 'content-range'),
                  body: tap.body(),
                  status,
                  range: header(rawHeaders, 'range'),
                  jobStatus,
                  at,
                });
            } catch (err) {
              this.options.log('error', 'telemetry failed on an observed exchange', { route, error: String(err) });
            }
          });
        });
      }
    });
    return upstreamReq;
  }

  /**
   * The job request body is small (Workhorse caps it at 32 KiB): hold it, add
   * the job_telemetry advertisement, then send it with a corrected length.
   */
  private holdJobRequest(exchange: Exchange, headers: string[], observer: ExchangeObserver): void {
    const { req } = exchange;
    const tap = new BodyTap(TEE_LIMITS.jobRequest);
    const held: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      tap.push(chunk);
      held.push(chunk);
      if (!tap.overflow) return;
      // Not a runner's request: stop holding it and stream it unchanged.
      req.pause();
      req.off('data', onData);
      req.off('end', onEnd);
      const upstreamReq = this.sendUpstream(exchange, headers);
      for (const c of held) upstreamReq.write(c);
      req.pipe(upstreamReq);
    };
    const onEnd = (): void => {
      const original = Buffer.concat(held);
      let body: Buffer = original;
      try {
        body = observer.editJobRequest(original) ?? original;
      } catch (err) {
        this.options.log('error', 'job request edit failed; forwarding it unchanged', { error: String(err) });
      }
      exchange.requestTap = tap;
      tap.chunks = [body];
      tap.size = body.length;
      let sendHeaders = headers;
      if (body !== original) {
        sendHeaders = endToEnd(headers, LENGTH_SKIP);
        sendHeaders.push('Content-Length', String(body.length));
      }
      this.sendUpstream(exchange, sendHeaders).end(body);
    };
    req.on('data', onData);
    req.on('end', onEnd);
  }

  /** A 201 job payload: read in full (bounded), let telemetry edit it, send it on. */
  private forwardJobPayload(
    upstreamRes: http.IncomingMessage,
    res: http.ServerResponse,
    requestTap: BodyTap | undefined,
    at: bigint,
    observer: ExchangeObserver,
  ): void {
    const chunks: Buffer[] = [];
    let size = 0;
    const status = upstreamRes.statusCode ?? 201;
    const rawHeaders = upstreamRes.rawHeaders;
    const passThrough = (): void => {
      res.writeHead(status, upstreamRes.statusMessage, endToEnd(rawHeaders) as unknown as http.OutgoingHttpHeaders);
      for (const c of chunks) res.write(c);
      upstreamRes.pipe(res);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > this.options.maxPayloadBytes) {
        upstreamRes.off('data', onData);
        upstreamRes.off('end', onEnd);
        this.options.log('warn', 'job payload larger than max_payload_bytes; forwarded without telemetry', {
          bytes: size,
          limit: this.options.maxPayloadBytes,
        });
        passThrough();
      }
    };
    const onEnd = (): void => {
      const original = Buffer.concat(chunks, size);
      let replacement: Buffer | undefined;
      try {
        const encoding = (header(rawHeaders, 'content-encoding') ?? 'identity').trim().toLowerCase();
        if (encoding === 'identity' || encoding === 'gzip') {
          const text = (encoding === 'gzip' ? gunzipSync(original) : original).toString('utf8');
          const requestBody = requestTap && !requestTap.overflow ? requestTap.body() : undefined;
          const edited = observer.editJobPayload(text, requestBody, at);
          if (edited !== undefined) {
            const bytes = Buffer.from(edited, 'utf8');
            replacement = encoding === 'gzip' ? gzipSync(bytes) : bytes;
          }
        } else {
          this.options.log('warn', 'job payload has an unsupported content-encoding; forwarded without telemetry', {
            encoding,
          });
        }
      } catch (err) {
        this.options.log('error', 'job payload handling failed; forwarding it unchanged', { error: String(err) });
        replacement = undefined;
      }
      const body = replacement ?? original;
      const headers = endToEnd(rawHeaders, LENGTH_SKIP);
      headers.push('Content-Length', String(body.length));
      res.writeHead(status, upstreamRes.statusMessage, headers as unknown as http.OutgoingHttpHeaders);
      res.end(body);
    };
    upstreamRes.on('data', onData);
    upstreamRes.on('end', onEnd);
  }
}
