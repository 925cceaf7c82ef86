// A real OTLP/gRPC trace receiver on loopback: a grpc-js server that decodes
// ExportTraceServiceRequest with protobuf. Used by the tests, the demo and the
// benchmarks as the collector, and by `gitlab-otel inspect`. Its `behaviour`
// hook lets a test make it fail the way collectors do (UNAVAILABLE, throttling
// with RetryInfo, partial success, slowness). `OtlpHttpReceiver` (at the end)
// is the same for OTLP/HTTP (docs/export.md#otlphttp-receiver).
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createRequire } from 'node:module';
import { gunzip } from 'node:zlib';
import type * as Protobuf from 'protobufjs';
import { otlpTypes, METRICS_EXPORT_PATH, TRACE_EXPORT_PATH, encodePartialSuccess, encodeRetryInfoStatus } from './otlp-proto.js';
import { decodeMetricsRequest, ReceivedMetrics, type ReceivedPoint } from './metrics/received-metrics.js';

export type AttributeValue = string | number | boolean | AttributeValue[] | null;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, AttributeValue>;
  status: { code: number; message: string };
  flags: number;
  resource: Record<string, AttributeValue>;
  scope: { name: string; version: string };
}

export interface ExportCall {
  spans: ReceivedSpan[];
  metadata: grpc.Metadata;
  /** The client certificate the TLS peer presented (mTLS), when it presented one. */
  clientCertificate?: { subjectCN: string; issuerCN: string; fingerprint256: string };
  /** When the call arrived, ms since epoch. */
  at: number;
}

/** What the receiver answers to one Export call. */
export type ExportAnswer =
  | { kind: 'ok' }
  | { kind: 'partial'; rejectedSpans: number; message: string }
  | { kind: 'error'; code: grpc.status; details?: string; retryDelayMs?: number }
  | { kind: 'delay'; ms: number; then?: ExportAnswer };

export type Behaviour = (call: ExportCall, callIndex: number) => ExportAnswer;

export interface ReceiverOptions {
  host?: string;
  port?: number;
  /**
   * PEM key and certificate: serve TLS instead of plaintext. With
   * `requireClientCertificate`, the handshake fails for a client that presents
   * no certificate, or one not signed by `clientCa` (mTLS).
   */
  tls?: { key: Buffer | string; cert: Buffer | string; clientCa?: Buffer | string; requireClientCertificate?: boolean };
  behaviour?: Behaviour;
  /** Called for every accepted (ok or partial) export. */
  onSpans?: (spans: ReceivedSpan[], call: ExportCall) => void;
  /**
   * Checked on every export before `behaviour`, e.g. a bearer token: return an
   * answer (typically UNAUTHENTICATED) to refuse the call, undefined to go on.
   */
  verify?: (metadata: grpc.Metadata) => ExportAnswer | undefined | Promise<ExportAnswer | undefined>;
}

interface RawKeyValue {
  key: string;
  value?: RawAnyValue;
}
interface RawAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string;
  doubleValue?: number;
  arrayValue?: { values?: RawAnyValue[] };
  bytesValue?: Uint8Array;
}

function anyValue(v: RawAnyValue | undefined): AttributeValue {
  if (!v) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(anyValue);
  if (v.bytesValue) return Buffer.from(v.bytesValue).toString('base64');
  return null;
}

function attributes(kvs: RawKeyValue[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of kvs ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

const hex = (b: Uint8Array | undefined): string => (b ? Buffer.from(b).toString('hex') : '');

/** Decodes an ExportTraceServiceRequest into flat spans. */
export function decodeExportRequest(body: Buffer): ReceivedSpan[] {
  const { ExportTraceServiceRequest } = otlpTypes();
  const msg = ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(body), {
    longs: String,
    defaults: false,
  }) as {
    resourceSpans?: {
      resource?: { attributes?: RawKeyValue[] };
      scopeSpans?: {
        scope?: { name?: string; version?: string };
        spans?: {
          traceId?: Uint8Array;
          spanId?: Uint8Array;
          parentSpanId?: Uint8Array;
          traceState?: string;
          name?: string;
          kind?: number;
          startTimeUnixNano?: string;
          endTimeUnixNano?: string;
          attributes?: RawKeyValue[];
          status?: { code?: number; message?: string };
          flags?: number;
        }[];
      }[];
    }[];
  };
  const out: ReceivedSpan[] = [];
  for (const rs of msg.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      const scope = { name: ss.scope?.name ?? '', version: ss.scope?.version ?? '' };
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          traceState: s.traceState ?? '',
          name: s.name ?? '',
          kind: s.kind ?? 0,
          startTimeUnixNano: BigInt(s.startTimeUnixNano ?? '0'),
          endTimeUnixNano: BigInt(s.endTimeUnixNano ?? '0'),
          attributes: attributes(s.attributes),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
          flags: s.flags ?? 0,
          resource,
          scope,
        });
      }
    }
  }
  return out;
}

const passThrough = (b: Buffer): Buffer => b;

/**
 * The span ids in an ExportTraceServiceRequest (hex, in order), found by
 * walking the wire format with protobufjs's Reader: every span is visited, none
 * is turned into an object. For receivers that only count (the export
 * benchmark's collector, docs/export.md#performance), where decoding whole
 * messages would make the receiver, not the exporter, what is measured.
 * Throws on a body that is not a valid request.
 */
export function exportRequestSpanIds(body: Uint8Array): string[] {
  const ids: string[] = [];
  // ExportTraceServiceRequest.resource_spans = 1, ResourceSpans.scope_spans = 2, ScopeSpans.spans = 2, Span.span_id = 2.
  const path = [1, 2, 2];
  const walk = (reader: Protobuf.Reader, end: number, depth: number): void => {
    while (reader.pos < end) {
      const key = reader.uint32();
      const field = key >>> 3;
      const wire = key & 7;
      if (depth < 3 && field === path[depth] && wire === 2) {
        const len = reader.uint32();
        walk(reader, reader.pos + len, depth + 1);
      } else if (depth === 3 && field === 2 && wire === 2) {
        const id = reader.bytes();
        ids.push(Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex'));
      } else reader.skipType(wire);
    }
    if (reader.pos !== end) throw new Error('truncated message');
  };
  const reader = protobufReader().create(body);
  walk(reader, body.length, 0);
  return ids;
}

let readerClass: typeof Protobuf.Reader | undefined;
/** protobufjs on first use, as otlp-proto.ts loads it. */
function protobufReader(): typeof Protobuf.Reader {
  readerClass ??= (createRequire(import.meta.url)('protobufjs') as typeof Protobuf).Reader;
  return readerClass;
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Metric data points from MetricsService/Export calls (docs/metrics.md#receiver). */
  readonly metrics = new ReceivedMetrics();
  readonly calls: ExportCall[] = [];
  behaviour: Behaviour;
  private readonly server = new grpc.Server();
  private readonly options: ReceiverOptions;
  private waiters: { predicate: () => boolean; resolve: () => void }[] = [];
  private boundPort = 0;

  constructor(options: ReceiverOptions = {}) {
    this.options = options;
    this.behaviour = options.behaviour ?? (() => ({ kind: 'ok' }));
    this.server.addService(
      {
        Export: {
          path: TRACE_EXPORT_PATH,
          requestStream: false,
          responseStream: false,
          requestSerialize: passThrough,
          requestDeserialize: passThrough,
          responseSerialize: passThrough,
          responseDeserialize: passThrough,
        },
      },
      { Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => this.handle(call, cb) },
    );
    this.server.addService(
      {
        Export: {
          path: METRICS_EXPORT_PATH,
          requestStream: false,
          responseStream: false,
          requestSerialize: passThrough,
          requestDeserialize: passThrough,
          responseSerialize: passThrough,
          responseDeserialize: passThrough,
        },
      },
      { Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => this.handleMetrics(call, cb) },
    );
  }

  /** A MetricsService/Export call: decoded and kept (after `verify`, as for traces); the answer is an empty response. */
  private handleMetrics(call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): void {
    let points: ReceivedPoint[];
    try {
      points = decodeMetricsRequest(call.request);
    } catch (err) {
      cb({ code: grpc.status.INVALID_ARGUMENT, details: `undecodable metrics request: ${(err as Error).message}` });
      return;
    }
    Promise.resolve()
      .then(() => this.options.verify?.(call.metadata))
      .then(
        (refusal) => {
          if (refusal?.kind === 'error') return cb({ code: refusal.code, details: refusal.details ?? 'receiver refused' });
          this.metrics.accept(points);
          cb(null, Buffer.alloc(0));
        },
        () => cb({ code: grpc.status.UNAUTHENTICATED, details: 'verification failed' }),
      );
  }

  get port(): number {
    return this.boundPort;
  }

  /** `http://127.0.0.1:PORT` (or https:// with TLS), the form OTLP exporters take. */
  get url(): string {
    const host = this.options.host ?? '127.0.0.1';
    return `${this.options.tls ? 'https' : 'http'}://${host}:${this.boundPort}`;
  }

  async start(): Promise<this> {
    const tls = this.options.tls;
    if (tls?.requireClientCertificate && !tls.clientCa) throw new Error('OTLP receiver: requireClientCertificate needs clientCa');
    const creds = tls
      ? grpc.ServerCredentials.createSsl(
          tls.clientCa ? Buffer.from(tls.clientCa) : null,
          [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }],
          tls.requireClientCertificate ?? false,
        )
      : grpc.ServerCredentials.createInsecure();
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(`${this.options.host ?? '127.0.0.1'}:${this.options.port ?? 0}`, creds, (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Resolves once `predicate` holds, or rejects after `timeoutMs`. */
  waitFor(predicate: (spans: ReceivedSpan[]) => boolean, timeoutMs = 10_000): Promise<void> {
    if (predicate(this.spans)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate: () => predicate(this.spans),
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`OTLP receiver: condition not met within ${timeoutMs} ms (${this.spans.length} spans received)`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  waitForSpans(count: number, timeoutMs?: number): Promise<void> {
    return this.waitFor((spans) => spans.length >= count, timeoutMs);
  }

  private handle(call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): void {
    let spans: ReceivedSpan[];
    try {
      spans = decodeExportRequest(call.request);
    } catch (err) {
      cb({ code: grpc.status.INVALID_ARGUMENT, details: `undecodable request: ${(err as Error).message}` });
      return;
    }
    const exportCall: ExportCall = { spans, metadata: call.metadata, at: Date.now() };
    const peer = call.getAuthContext().sslPeerCertificate;
    // Node reports an empty object, not undefined, when the peer sent no certificate.
    if (peer?.fingerprint256) {
      exportCall.clientCertificate = {
        subjectCN: String(peer.subject?.CN ?? ''),
        issuerCN: String(peer.issuer?.CN ?? ''),
        fingerprint256: peer.fingerprint256,
      };
    }
    this.calls.push(exportCall);
    this.wake();
    const index = this.calls.length - 1;
    const verify = this.options.verify;
    if (!verify) {
      this.answer(this.behaviour(exportCall, index), exportCall, call, cb);
      return;
    }
    Promise.resolve()
      .then(() => verify(call.metadata))
      .then(
        (refusal) => this.answer(refusal ?? this.behaviour(exportCall, index), exportCall, call, cb),
        () => this.answer({ kind: 'error', code: grpc.status.UNAUTHENTICATED, details: 'verification failed' }, exportCall, call, cb),
      );
  }

  private answer(
    answer: ExportAnswer,
    exportCall: ExportCall,
    call: grpc.ServerUnaryCall<Buffer, Buffer>,
    cb: grpc.sendUnaryData<Buffer>,
  ): void {
    switch (answer.kind) {
      case 'ok':
        this.accept(exportCall.spans, exportCall);
        cb(null, Buffer.alloc(0));
        return;
      case 'partial':
        this.accept(exportCall.spans.slice(answer.rejectedSpans), exportCall);
        cb(null, encodePartialSuccess(answer.rejectedSpans, answer.message));
        return;
      case 'error': {
        const metadata = new grpc.Metadata();
        if (answer.retryDelayMs !== undefined) {
          metadata.set('grpc-status-details-bin', encodeRetryInfoStatus(answer.code, answer.details ?? '', answer.retryDelayMs));
        }
        cb({ code: answer.code, details: answer.details ?? 'receiver refused', metadata });
        return;
      }
      case 'delay':
        setTimeout(() => this.answer(answer.then ?? { kind: 'ok' }, exportCall, call, cb), answer.ms);
        return;
    }
  }

  private accept(spans: ReceivedSpan[], call: ExportCall): void {
    this.spans.push(...spans);
    this.options.onSpans?.(spans, call);
    this.wake();
  }

  /** Re-checks every waiter: after each call, accepted or not, so a test can wait on `calls` too. */
  private wake(): void {
    const ready = this.waiters.filter((w) => w.predicate());
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }
}

// ---------------------------------------------------------------------------
// OTLP/HTTP (binary protobuf), as the OTLP specification's "OTLP/HTTP" section
// defines it (docs/export.md#otlphttp-receiver): POST to /v1/traces with
// `Content-Type: application/x-protobuf`, optionally `Content-Encoding: gzip`;
// 200 with an ExportTraceServiceResponse (partial_success when spans were
// rejected); throttling as 429/503 with `Retry-After`; errors carry a
// google.rpc.Status body.

/** One OTLP/HTTP request that passed the checks (a refused one is in `refusals`). */
export interface HttpExportCall {
  spans: ReceivedSpan[];
  headers: http.IncomingHttpHeaders;
  /** The Authorization header as received, for tests of bearer tokens. */
  authorization?: string;
  contentEncoding: 'gzip' | 'identity';
  /** Body size on the wire (compressed when gzipped). */
  bytes: number;
  clientCertificate?: { subjectCN: string; issuerCN: string; fingerprint256: string };
  at: number;
}

/** A request the receiver refused because it broke the protocol; a correct exporter never causes one. */
export interface HttpRefusal {
  status: number;
  reason: string;
  at: number;
}

export type HttpExportAnswer =
  | { kind: 'ok' }
  | { kind: 'partial'; rejectedSpans: number; message: string }
  /** An error status; `retryAfter` is sent as is (delay-seconds or an HTTP date). */
  | { kind: 'status'; status: number; retryAfter?: string; message?: string }
  | { kind: 'delay'; ms: number; then?: HttpExportAnswer }
  /** Drop the connection without an answer (a network error for the client). */
  | { kind: 'reset' };

export type HttpBehaviour = (call: HttpExportCall, callIndex: number) => HttpExportAnswer;

export interface HttpReceiverOptions {
  host?: string;
  port?: number;
  /** Default `/v1/traces`. */
  path?: string;
  /** Where metrics are posted; default the trace path with `v1/metrics` for `v1/traces` (else `/v1/metrics`). */
  metricsPath?: string;
  tls?: { key: Buffer | string; cert: Buffer | string; clientCa?: Buffer | string; requireClientCertificate?: boolean };
  behaviour?: HttpBehaviour;
  onSpans?: (spans: ReceivedSpan[], call: HttpExportCall) => void;
  /** Told about every request refused for breaking the protocol (also kept in `refusals`). */
  onRefusal?: (refusal: HttpRefusal) => void;
  /** Checked before `behaviour`, e.g. a bearer token: return an answer (typically 401) to refuse. */
  verify?: (call: HttpExportCall) => HttpExportAnswer | undefined | Promise<HttpExportAnswer | undefined>;
  /** Largest request body accepted, before and after gunzip; default 20 MiB, the OTLP spec's recommended limit (413 beyond). */
  maxBodyBytes?: number;
}

const PROTOBUF = 'application/x-protobuf';

function rpcStatusBody(code: number, message: string): Buffer {
  const { RpcStatus } = otlpTypes();
  return Buffer.from(RpcStatus.encode(RpcStatus.create({ code, message })).finish());
}

/** The gRPC code a google.rpc.Status body carries for an HTTP status (UNAVAILABLE, RESOURCE_EXHAUSTED, ...). */
function statusCodeFor(httpStatus: number): number {
  if (httpStatus === 429) return grpc.status.RESOURCE_EXHAUSTED;
  if (httpStatus === 503 || httpStatus === 502 || httpStatus === 504) return grpc.status.UNAVAILABLE;
  if (httpStatus === 401) return grpc.status.UNAUTHENTICATED;
  if (httpStatus === 403) return grpc.status.PERMISSION_DENIED;
  if (httpStatus === 400) return grpc.status.INVALID_ARGUMENT;
  return grpc.status.UNKNOWN;
}

export class OtlpHttpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Metric data points from POSTs to the metrics path (docs/metrics.md#receiver). */
  readonly metrics = new ReceivedMetrics();
  private readonly metricsPath: string;
  readonly calls: HttpExportCall[] = [];
  readonly refusals: HttpRefusal[] = [];
  behaviour: HttpBehaviour;
  private readonly server: http.Server;
  private readonly path: string;
  private readonly maxBodyBytes: number;
  private waiters: { predicate: () => boolean; resolve: () => void }[] = [];
  private boundPort = 0;

  constructor(private readonly options: HttpReceiverOptions = {}) {
    this.behaviour = options.behaviour ?? (() => ({ kind: 'ok' }));
    this.path = options.path ?? '/v1/traces';
    this.metricsPath =
      options.metricsPath ?? (this.path.endsWith('/v1/traces') ? `${this.path.slice(0, -'traces'.length)}metrics` : '/v1/metrics');
    this.maxBodyBytes = options.maxBodyBytes ?? 20 * 1024 * 1024;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => this.handle(req, res);
    const tls = options.tls;
    if (tls?.requireClientCertificate && !tls.clientCa) throw new Error('OTLP/HTTP receiver: requireClientCertificate needs clientCa');
    this.server = tls
      ? https.createServer(
          {
            key: tls.key,
            cert: tls.cert,
            ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: tls.requireClientCertificate ?? false } : {}),
          },
          handler,
        )
      : http.createServer(handler);
    this.server.keepAliveTimeout = 30_000;
  }

  get port(): number {
    return this.boundPort;
  }

  /** The full URL to export to, e.g. `http://127.0.0.1:PORT/v1/traces`. */
  get url(): string {
    const host = this.options.host ?? '127.0.0.1';
    return `${this.options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${this.boundPort}${this.path}`;
  }

  /** `http://127.0.0.1:PORT` without the path, the form OTEL_EXPORTER_OTLP_ENDPOINT takes. */
  get baseUrl(): string {
    return this.url.slice(0, this.url.length - this.path.length);
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.closeAllConnections();
        resolve();
      }, 2000);
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }

  /** Resolves once `predicate` holds, or rejects after `timeoutMs`. */
  waitFor(predicate: (spans: ReceivedSpan[]) => boolean, timeoutMs = 10_000): Promise<void> {
    if (predicate(this.spans)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate: () => predicate(this.spans),
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`OTLP/HTTP receiver: condition not met within ${timeoutMs} ms (${this.spans.length} spans received)`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  waitForSpans(count: number, timeoutMs?: number): Promise<void> {
    return this.waitFor((spans) => spans.length >= count, timeoutMs);
  }

  private refuse(res: http.ServerResponse, status: number, reason: string): void {
    const refusal = { status, reason, at: Date.now() };
    this.refusals.push(refusal);
    this.options.onRefusal?.(refusal);
    this.wake();
    const body = rpcStatusBody(statusCodeFor(status), reason);
    res.writeHead(status, { 'content-type': PROTOBUF, 'content-length': body.length });
    res.end(body);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > this.maxBodyBytes) tooBig = true;
      else chunks.push(c);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (req.method !== 'POST') return this.refuse(res, 405, `method ${req.method ?? ''} is not POST`);
      const path = (req.url ?? '').split('?')[0];
      const metrics = path === this.metricsPath && path !== this.path;
      // The path without its query: a query string may carry a credential, and the reason reaches stderr in inspect.
      if (path !== this.path && !metrics) return this.refuse(res, 404, `path ${path} is not ${this.path}`);
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== PROTOBUF) return this.refuse(res, 415, `Content-Type ${type || '(none)'} is not ${PROTOBUF}`);
      const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
      if (encoding !== 'gzip' && encoding !== 'identity') return this.refuse(res, 415, `Content-Encoding ${encoding} is not supported`);
      if (tooBig) return this.refuse(res, 413, `body over ${this.maxBodyBytes} bytes`);
      const raw = Buffer.concat(chunks);
      const decode = (body: Buffer): void => {
        if (metrics) return this.acceptMetrics(body, exportCall(req, [], encoding, raw.length), res);
        let spans: ReceivedSpan[];
        try {
          spans = decodeExportRequest(body);
        } catch (err) {
          return this.refuse(res, 400, `undecodable ExportTraceServiceRequest: ${(err as Error).message}`);
        }
        const call = exportCall(req, spans, encoding, raw.length);
        this.calls.push(call);
        this.wake();
        const index = this.calls.length - 1;
        const verify = this.options.verify;
        Promise.resolve()
          .then(() => verify?.(call))
          .then(
            (refusal) => this.answer(refusal ?? this.behaviour(call, index), call, res),
            () => this.answer({ kind: 'status', status: 401, message: 'verification failed' }, call, res),
          );
      };
      if (encoding === 'identity') return decode(raw);
      gunzip(raw, { maxOutputLength: this.maxBodyBytes }, (err, body) => {
        if (!err) return decode(body);
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
          return this.refuse(res, 413, `body over ${this.maxBodyBytes} bytes once gunzipped`);
        this.refuse(res, 400, `Content-Encoding gzip but the body does not gunzip: ${err.message}`);
      });
    });
  }

  /** A metrics POST: decoded and kept after `verify` (same auth as traces); the answer is an empty response. */
  private acceptMetrics(body: Buffer, call: HttpExportCall, res: http.ServerResponse): void {
    let points: ReceivedPoint[];
    try {
      points = decodeMetricsRequest(body);
    } catch (err) {
      return this.refuse(res, 400, `undecodable ExportMetricsServiceRequest: ${(err as Error).message}`);
    }
    Promise.resolve()
      .then(() => this.options.verify?.(call))
      .then(
        (refusal) => {
          if (refusal?.kind === 'status') return this.refuse(res, refusal.status, refusal.message ?? 'receiver refused');
          this.metrics.accept(points);
          res.writeHead(200, { 'content-type': PROTOBUF, 'content-length': 0 });
          res.end();
        },
        () => this.refuse(res, 401, 'verification failed'),
      );
  }

  private answer(answer: HttpExportAnswer, call: HttpExportCall, res: http.ServerResponse): void {
    switch (answer.kind) {
      case 'ok':
        this.accept(call.spans, call);
        // An empty ExportTraceServiceResponse: full success.
        res.writeHead(200, { 'content-type': PROTOBUF, 'content-length': 0 });
        res.end();
        return;
      case 'partial': {
        this.accept(call.spans.slice(answer.rejectedSpans), call);
        const body = encodePartialSuccess(answer.rejectedSpans, answer.message);
        res.writeHead(200, { 'content-type': PROTOBUF, 'content-length': body.length });
        res.end(body);
        return;
      }
      case 'status': {
        const body = rpcStatusBody(statusCodeFor(answer.status), answer.message ?? 'receiver refused');
        res.writeHead(answer.status, {
          'content-type': PROTOBUF,
          'content-length': body.length,
          ...(answer.retryAfter !== undefined ? { 'retry-after': answer.retryAfter } : {}),
        });
        res.end(body);
        return;
      }
      case 'delay':
        setTimeout(() => this.answer(answer.then ?? { kind: 'ok' }, call, res), answer.ms);
        return;
      case 'reset':
        res.socket?.destroy();
        return;
    }
  }

  private accept(spans: ReceivedSpan[], call: HttpExportCall): void {
    for (const s of spans) this.spans.push(s);
    this.options.onSpans?.(spans, call);
    this.wake();
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.predicate());
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }
}

/** One OTLP/HTTP request as the receiver records it (traces and metrics alike); `bytes` as sent, before gunzip. */
function exportCall(req: http.IncomingMessage, spans: ReceivedSpan[], encoding: 'gzip' | 'identity', bytes: number): HttpExportCall {
  const call: HttpExportCall = {
    spans,
    headers: req.headers,
    ...(req.headers.authorization !== undefined ? { authorization: req.headers.authorization } : {}),
    contentEncoding: encoding,
    bytes,
    at: Date.now(),
  };
  const socket = req.socket as Partial<TLSSocket>;
  const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  // Node reports an empty object, not undefined, when the peer sent no certificate.
  if (peer?.fingerprint256) {
    call.clientCertificate = {
      subjectCN: String(peer.subject?.CN ?? ''),
      issuerCN: String(peer.issuer?.CN ?? ''),
      fingerprint256: peer.fingerprint256,
    };
  }
  return call;
}
