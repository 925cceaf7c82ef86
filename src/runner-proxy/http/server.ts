// The forwarding path: a streaming HTTP/1.1 reverse proxy to exactly one
// upstream GitLab. Every request the runner makes goes through here untouched
// except for the documented payload edits; bodies stream with backpressure,
// so a multi-GB artifact upload costs constant memory. Telemetry sits beside
// this path (see routes.ts): the runner never waits on it, and nothing it throws
// can reach a response.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { gunzip, gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { Counter, Histogram } from 'prom-client';
import type { Logger } from '../../log.js';
import { nowNanos } from '../../telemetry/spans.js';
import { endToEnd, header, LENGTH_SKIP, requestHeaders, type RequestHeaders } from './raw-headers.js';
import {
  OBSERVED_BODY_LIMITS,
  routeOf,
  type ArtifactTransferExchange,
  type ExchangeObserver,
  type JobRouterMode,
  type Route,
} from './routes.js';

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
  /** A client limit was hit (docs/security.md#client-limits). */
  limitHits?: Counter<'limit'>;
  /** Job Router discovery calls the proxy answered 501 itself (docs/runner-protocol.md#job-router). */
  routerDiscoveryDeclined?: Counter;
}

/**
 * What one client (a job container can reach this listener) may take from the
 * proxy, so it cannot exhaust memory or file descriptors for every other job
 * (docs/security.md#client-limits).
 */
export interface ClientLimits {
  /** Open runner-side connections, all clients together. */
  maxConnections: number;
  /** Open connections from one remote address. */
  maxConnectionsPerClient: number;
  /** Bytes of request and payload bodies held for telemetry at once; past it, exchanges are forwarded unobserved. */
  maxBufferedBytes: number;
  /** A connection with no request (a new one before its first byte, a keep-alive one between requests) is closed after this. */
  idleTimeoutMs: number;
}

export const DEFAULT_CLIENT_LIMITS: ClientLimits = {
  maxConnections: 4096,
  maxConnectionsPerClient: 1024,
  maxBufferedBytes: 128 * 1024 * 1024,
  // Longer than the runner's 90 s idle-connection timeout, so the runner,
  // not the proxy, closes idle keep-alive connections (no reuse races).
  idleTimeoutMs: 120_000,
};

export type LimitName =
  'connections' | 'client_connections' | 'idle_connection' | 'buffered_bytes' | 'stalled_connection' | 'payload_bytes';

export interface RunnerProxyOptions {
  upstream: UpstreamOptions;
  observer?: ExchangeObserver;
  /** Largest 201 job payload that is read for telemetry, after decoding; larger ones go through untouched. */
  maxPayloadBytes: number;
  limits?: Partial<ClientLimits>;
  /** Job Router discovery; default `decline`. */
  jobRouter?: JobRouterMode;
  metrics?: ProxyMetrics;
  log: Logger;
}

/** What GitLab reads as the job token after the body: the query's `token`, else `JOB-TOKEN`. */
function presentedJobToken(target: string, jobTokenHeader: string | undefined): string | undefined {
  const q = target.indexOf('?');
  const query = q < 0 ? undefined : new URLSearchParams(target.slice(q + 1)).get('token');
  return query || jobTokenHeader || undefined;
}

function isJson(contentType: string | undefined): boolean {
  return !!contentType && /^application\/json\b/i.test(contentType);
}

const gunzipAsync = promisify(gunzip);
const gzipAsync = promisify(gzip);

/** Bytes held for telemetry across all exchanges; a reservation that does not fit is refused. */
export class BufferBudget {
  used = 0;
  constructor(
    readonly max: number,
    private readonly onRefused: () => void = () => undefined,
  ) {}
  reserve(n: number): boolean {
    if (this.used + n > this.max) {
      this.onRefused();
      return false;
    }
    this.used += n;
    return true;
  }
  release(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

/** Collects a body's chunks by reference while it streams, up to a limit and within the shared budget. */
class BodyTap {
  chunks: Buffer[] = [];
  size = 0;
  overflow = false;
  private reserved = 0;
  constructor(
    private readonly limit: number,
    private readonly budget?: BufferBudget,
  ) {}
  push(chunk: Buffer): void {
    if (this.overflow) return;
    this.size += chunk.length;
    if (this.size > this.limit || (this.budget && !this.budget.reserve(chunk.length))) {
      this.overflow = true;
      this.chunks = [];
      this.release();
      return;
    }
    this.reserved += chunk.length;
    this.chunks.push(chunk);
  }
  body(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
  }
  /** The bytes go back to the budget (the chunks may still be read once more). */
  release(): void {
    this.budget?.release(this.reserved);
    this.reserved = 0;
  }
}

/** An artifact body being counted as it is forwarded (docs/metrics.md#artifact-transfers). */
interface ArtifactCount {
  direction: ArtifactTransferExchange['direction'];
  bytes: number;
  /** GitLab's status, once its answer's headers are in. */
  status?: number;
}

/**
 * `src.pipe(dst)` for one body, counting the bytes handed on. One 'data'
 * listener does both: a counting listener beside pipe's would make the emitter
 * copy its listener array on every chunk (docs/performance.md#forwarding-path).
 * Like pipe: backpressure by pause/resume on 'drain', `end` at the source's end,
 * and the source paused when the destination closes early.
 */
function pipeCounting(src: Readable, dst: Writable, count: ArtifactCount): void {
  const onData = (chunk: Buffer): void => {
    count.bytes += chunk.length;
    if (!dst.write(chunk)) src.pause();
  };
  const onDrain = (): void => {
    src.resume();
  };
  const onEnd = (): void => {
    dst.end();
  };
  const onClose = (): void => {
    src.off('data', onData);
    src.off('end', onEnd);
    dst.off('drain', onDrain);
    if (!src.readableEnded) src.pause();
  };
  src.on('data', onData);
  src.once('end', onEnd);
  dst.on('drain', onDrain);
  dst.once('close', onClose);
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
  /** The runner's request headers, read once (docs/performance.md#forwarding-path). */
  headers: RequestHeaders;
  /** The job token the request presents (job updates, log uploads and counted artifact transfers only). */
  jobToken?: string;
  requestTap?: BodyTap;
  upstreamReq?: http.ClientRequest;
  /** GitLab's response, once its headers are in. */
  upstreamRes?: http.IncomingMessage;
  /** Hand the exchange to telemetry once the runner has the whole answer. */
  observeOnFinish?: boolean;
  /** An artifact upload or download whose body is counted (only with an observer that takes them). */
  artifact?: ArtifactCount;
}

export class RunnerProxy {
  private readonly server: http.Server;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  private readonly basePath: string;
  private readonly hostHeader: string;
  private readonly inFlight = new Set<http.ServerResponse>();
  private readonly limits: ClientLimits;
  private readonly budget: BufferBudget;
  private readonly perClient = new Map<string, number>();
  /** Connections that have not sent a request yet: their idle timer. */
  private readonly firstRequest = new WeakMap<Socket, NodeJS.Timeout>();
  private connections = 0;

  constructor(private readonly options: RunnerProxyOptions) {
    const { url } = options.upstream;
    this.limits = { ...DEFAULT_CLIENT_LIMITS, ...options.limits };
    this.budget = new BufferBudget(this.limits.maxBufferedBytes, () => this.limitHit('buffered_bytes'));
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
        keepAliveTimeout: this.limits.idleTimeoutMs,
      },
      (req, res) => this.handle(req, res),
    );
    // A connection with no byte either way for longer than GitLab may take to
    // answer (upstream.headers_timeout) is stalled, not waiting: an upload
    // streams, a long poll is answered within a minute.
    this.server.setTimeout(options.upstream.headersTimeoutMs + 60_000, (socket: Socket) => {
      this.limitHit('stalled_connection');
      socket.destroy();
    });
    this.server.on('connection', (socket: Socket) => this.admit(socket));
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

  /** Bytes currently held for telemetry (for tests and /healthz). */
  get bufferedBytes(): number {
    return this.budget.used;
  }

  private limitHit(limit: LimitName): void {
    this.options.metrics?.limitHits?.inc({ limit });
  }

  /** Counts a new connection against the total and per-client limits; over either, it gets a 503 and is closed. */
  private admit(socket: Socket): void {
    const client = socket.remoteAddress ?? '';
    const mine = this.perClient.get(client) ?? 0;
    const over: LimitName | undefined =
      this.connections >= this.limits.maxConnections
        ? 'connections'
        : mine >= this.limits.maxConnectionsPerClient
          ? 'client_connections'
          : undefined;
    if (over) {
      this.limitHit(over);
      socket.on('error', () => undefined);
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n');
      socket.destroySoon();
      return;
    }
    this.connections++;
    this.perClient.set(client, mine + 1);
    // Between requests Node's keepAliveTimeout closes the connection; before the
    // first request only headersTimeout would, checked every 30 s.
    const idle = setTimeout(() => {
      this.limitHit('idle_connection');
      socket.destroy();
    }, this.limits.idleTimeoutMs);
    idle.unref();
    // Cleared by the first request (handle()), not by a 'data' listener: one would take the socket off
    // the HTTP parser's native read path for the connection's whole life.
    this.firstRequest.set(socket, idle);
    socket.once('close', () => clearTimeout(idle));
    socket.once('close', () => {
      this.connections--;
      const n = (this.perClient.get(client) ?? 1) - 1;
      if (n <= 0) this.perClient.delete(client);
      else this.perClient.set(client, n);
    });
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
    const idle = this.firstRequest.get(req.socket);
    if (idle) {
      clearTimeout(idle);
      this.firstRequest.delete(req.socket);
    }
    const target = req.url ?? '';
    if (!target.startsWith('/')) {
      // Absolute-form (or '*') targets are what forward proxies get; this is not one.
      this.refuse(res, 400, 'only origin-form request targets are accepted (this is a reverse proxy)');
      this.options.metrics?.requests.inc({ route: 'other', status: '400' });
      req.resume();
      return;
    }
    const q = target.indexOf('?');
    const { route, jobId } = routeOf(req.method, q < 0 ? target : target.slice(0, q));
    const reqHeaders = requestHeaders(req.rawHeaders);
    const exchange: Exchange = { req, res, target, route, jobId, at, started: process.hrtime.bigint(), headers: reqHeaders };
    this.inFlight.add(res);
    // One 'close' and one 'finish' listener per exchange: an emitter with several listeners for an
    // event copies its listener array on every emit (docs/performance.md#forwarding-path).
    res.on('close', () => this.responseClosed(exchange));
    const observer = this.options.observer;
    if (this.options.metrics || observer) res.on('finish', () => this.responseFinished(exchange));

    const clientIp = req.socket.remoteAddress ?? '';
    const priorXff = reqHeaders.xForwardedFor;
    const headers = reqHeaders.forward;
    headers.push('Host', this.hostHeader, 'X-Forwarded-For', priorXff ? `${priorXff}, ${clientIp}` : clientIp);

    if (route === 'router_discovery' && (this.options.jobRouter ?? 'decline') === 'decline') {
      this.declineRouterDiscovery(req, res);
      return;
    }
    if (observer && route === 'job_request') {
      this.holdJobRequest(exchange, headers, observer);
      return;
    }
    if (route === 'artifacts' && observer?.artifactTransfer && jobId !== undefined && (req.method === 'POST' || req.method === 'GET')) {
      // Set before sendUpstream: a download's body is counted as GitLab's answer streams back.
      exchange.artifact = { direction: req.method === 'POST' ? 'upload' : 'download', bytes: 0 };
      exchange.jobToken = presentedJobToken(target, reqHeaders.jobToken);
    }
    const upstreamReq = this.sendUpstream(exchange, headers);
    if (exchange.artifact?.direction === 'upload') {
      pipeCounting(req, upstreamReq, exchange.artifact);
      return;
    }
    if (observer && jobId !== undefined && (route === 'job_update' || route === 'trace_patch')) {
      exchange.jobToken = presentedJobToken(target, reqHeaders.jobToken);
      // A log upload is held for telemetry only when it presents the tracked job's token: a neighbour job
      // cannot make the proxy buffer its bodies (docs/security.md#client-limits).
      const wanted = route !== 'trace_patch' || !observer.observesTracePatch || observer.observesTracePatch(jobId, exchange.jobToken);
      if (wanted) {
        const tap = new BodyTap(route === 'trace_patch' ? OBSERVED_BODY_LIMITS.tracePatch : OBSERVED_BODY_LIMITS.jobUpdate, this.budget);
        exchange.requestTap = tap;
        req.on('data', (chunk: Buffer) => tap.push(chunk));
      }
    }
    req.pipe(upstreamReq);
  }

  /** The runner's side of the exchange is over (answered, or gone). */
  private responseClosed(exchange: Exchange): void {
    const { res, upstreamReq, requestTap } = exchange;
    this.inFlight.delete(res);
    // A runner that goes away mid-response: stop the upstream side.
    if (upstreamReq && !res.writableFinished) upstreamReq.destroy();
    // After the telemetry hand-over queued at 'finish' (which still reads the chunks).
    if (requestTap) setImmediate(() => requestTap.release());
    if (exchange.artifact) this.reportArtifactTransfer(exchange, exchange.artifact);
  }

  /** An artifact transfer ended (answered, aborted, refused): its count goes to telemetry after this turn. */
  private reportArtifactTransfer(exchange: Exchange, count: ArtifactCount): void {
    const observer = this.options.observer;
    const { jobId, jobToken } = exchange;
    if (!observer?.artifactTransfer || jobId === undefined) return;
    // Read now: what crossed until the exchange ended, whatever is still in flight after it.
    const { direction, bytes, status } = count;
    const complete = exchange.res.writableFinished && status !== undefined;
    setImmediate(() => {
      const transfer: ArtifactTransferExchange = { jobId, direction, bytes, complete };
      if (jobToken !== undefined) transfer.jobToken = jobToken;
      if (status !== undefined) transfer.status = status;
      try {
        observer.artifactTransfer?.(transfer);
      } catch (err) {
        this.options.log('error', 'telemetry failed on an artifact transfer', { error: String(err) });
      }
    });
  }

  /** The runner has the whole answer: count it, then hand the exchange to telemetry. */
  private responseFinished(exchange: Exchange): void {
    const { res, route } = exchange;
    this.options.metrics?.requests.inc({ route, status: String(res.statusCode) });
    if (exchange.observeOnFinish) this.observe(exchange);
  }

  /** Hands a job update or log upload GitLab answered to telemetry, after the runner has its answer. */
  private observe(exchange: Exchange): void {
    const { req, route, jobId, requestTap: tap, upstreamRes, at } = exchange;
    const observer = this.options.observer;
    if (!observer || !tap || !upstreamRes || jobId === undefined || tap.overflow || !req.complete) return;
    const status = upstreamRes.statusCode ?? 502;
    const rawHeaders = upstreamRes.rawHeaders;
    const jobStatus = header(rawHeaders, 'job-status');
    const jobToken = exchange.jobToken;
    // Telemetry runs after the runner has its answer, and never throws into the proxy.
    setImmediate(() => {
      try {
        if (route === 'job_update') observer.jobUpdate({ jobId, body: tap.body(), status, jobStatus, jobToken, at });
        else
          observer.tracePatch({
            jobId,
            jobToken,
            contentRange: exchange.headers.contentRange,
            body: tap.chunks,
            status,
            range: header(rawHeaders, 'range'),
            jobStatus,
            at,
          });
      } catch (err) {
        this.options.log('error', 'telemetry failed on an observed exchange', { route, error: String(err) });
      }
    });
  }

  /**
   * Answers the runner's Job Router discovery with 501, as GitLab does where the
   * router is not enabled: the runner logs it, remembers "no router" for an hour
   * and requests jobs over HTTP through this proxy (docs/runner-protocol.md#job-router).
   */
  private declineRouterDiscovery(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.resume();
    this.options.metrics?.routerDiscoveryDeclined?.inc();
    this.options.log('info', 'Job Router discovery answered 501 so jobs are requested through the proxy (job_router: decline)');
    const body = JSON.stringify({ message: '501 Not Implemented: Job Router discovery declined by gitlab-otel' });
    res.writeHead(501, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  /** Opens the upstream request and wires its response back to the runner. */
  private sendUpstream(exchange: Exchange, headers: string[]): http.ClientRequest {
    const { req, res, route, at } = exchange;
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
      headers: headers,
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
    exchange.upstreamReq = upstreamReq;
    req.on('aborted', () => upstreamReq.destroy());
    // A runner that goes away mid-response: stop the upstream side (also on 'close': responseClosed), never crash.
    res.on('error', () => upstreamReq.destroy());

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
      res.writeHead(status, upstreamRes.statusMessage, endToEnd(rawHeaders));
      const artifact = exchange.artifact;
      if (artifact) {
        artifact.status = status;
        if (artifact.direction === 'download') {
          pipeCounting(upstreamRes, res, artifact);
          return;
        }
      }
      upstreamRes.pipe(res);
      if (exchange.requestTap && (route === 'job_update' || route === 'trace_patch')) {
        exchange.upstreamRes = upstreamRes;
        exchange.observeOnFinish = true;
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
    const tap = new BodyTap(OBSERVED_BODY_LIMITS.jobRequest, this.budget);
    exchange.res.once('close', () => tap.release());
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

  /**
   * A 201 job payload: read in full (bounded), let telemetry edit it, send it
   * on. The bound (max_payload_bytes) applies to the decoded body too, and
   * decoding runs off the event loop, so a gzip bomb from upstream neither
   * stalls other jobs' forwarding nor inflates the proxy
   * (docs/security.md#decoded-body-bound); it goes through as received.
   */
  private forwardJobPayload(
    upstreamRes: http.IncomingMessage,
    res: http.ServerResponse,
    requestTap: BodyTap | undefined,
    at: bigint,
    observer: ExchangeObserver,
  ): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let reserved = 0;
    const release = (): void => {
      this.budget.release(reserved);
      reserved = 0;
    };
    res.once('close', release);
    const status = upstreamRes.statusCode ?? 201;
    const rawHeaders = upstreamRes.rawHeaders;
    const limit = this.options.maxPayloadBytes;
    const passThrough = (): void => {
      res.writeHead(status, upstreamRes.statusMessage, endToEnd(rawHeaders));
      for (const c of chunks) res.write(c);
      upstreamRes.pipe(res);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      const overLimit = size > limit;
      if (overLimit || !this.budget.reserve(chunk.length)) {
        upstreamRes.off('data', onData);
        upstreamRes.off('end', onEnd);
        if (overLimit) this.limitHit('payload_bytes');
        this.options.log(
          'warn',
          overLimit
            ? 'job payload larger than max_payload_bytes; forwarded without telemetry'
            : 'telemetry buffers full (limits.max_buffered_bytes); job payload forwarded without telemetry',
          { bytes: size, limit: overLimit ? limit : this.limits.maxBufferedBytes },
        );
        passThrough();
        return;
      }
      reserved += chunk.length;
    };
    const send = (body: Buffer): void => {
      release();
      if (res.destroyed) return;
      const headers = endToEnd(rawHeaders, LENGTH_SKIP);
      headers.push('Content-Length', String(body.length));
      res.writeHead(status, upstreamRes.statusMessage, headers);
      res.end(body);
    };
    const onEnd = (): void => {
      const original = Buffer.concat(chunks, size);
      const encoding = (header(rawHeaders, 'content-encoding') ?? 'identity').trim().toLowerCase();
      if (encoding !== 'identity' && encoding !== 'gzip') {
        this.options.log('warn', 'job payload has an unsupported content-encoding; forwarded without telemetry', { encoding });
        send(original);
        return;
      }
      this.editPayload(original, encoding, requestTap, at, observer).then(
        (replacement) => send(replacement ?? original),
        (err: unknown) => {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'BUFFERS_FULL') {
            this.options.log('warn', 'telemetry buffers full (limits.max_buffered_bytes); job payload forwarded without telemetry');
          } else if (code === 'ERR_BUFFER_TOO_LARGE') {
            this.limitHit('payload_bytes');
            this.options.log('warn', 'decoded job payload larger than max_payload_bytes; forwarded without telemetry', {
              bytes: size,
              limit,
            });
          } else {
            this.options.log('error', 'job payload handling failed; forwarding it unchanged', { error: String(err) });
          }
          send(original);
        },
      );
    };
    upstreamRes.on('data', onData);
    upstreamRes.on('end', onEnd);
  }

  /** The edited payload bytes, or undefined to forward the original. Rejects with ERR_BUFFER_TOO_LARGE past the bound. */
  private async editPayload(
    original: Buffer,
    encoding: 'identity' | 'gzip',
    requestTap: BodyTap | undefined,
    at: bigint,
    observer: ExchangeObserver,
  ): Promise<Buffer | undefined> {
    const limit = this.options.maxPayloadBytes;
    let decoded = original;
    if (encoding === 'gzip') {
      // The decoded bytes count against the shared budget too, for as long as they are held.
      if (!this.budget.reserve(limit)) throw Object.assign(new Error('telemetry buffers full'), { code: 'BUFFERS_FULL' });
      try {
        decoded = await gunzipAsync(original, { maxOutputLength: limit });
      } finally {
        this.budget.release(limit);
      }
    }
    const requestBody = requestTap && !requestTap.overflow ? requestTap.body() : undefined;
    const edited = observer.editJobPayload(decoded.toString('utf8'), requestBody, at);
    if (edited === undefined) return undefined;
    const bytes = Buffer.from(edited, 'utf8');
    return encoding === 'gzip' ? gzipAsync(bytes) : bytes;
  }
}
