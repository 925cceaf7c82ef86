// A real OTLP/gRPC trace receiver on loopback: a grpc-js server that decodes
// ExportTraceServiceRequest with protobuf. Used by the tests, the demo and the
// benchmarks as the collector, and by `gitlab-otel inspect`. Its `behaviour`
// hook lets a test make it fail the way collectors do (UNAVAILABLE, throttling
// with RetryInfo, partial success, slowness).
import * as grpc from '@grpc/grpc-js';
import { otlpTypes, TRACE_EXPORT_PATH, encodePartialSuccess, encodeRetryInfoStatus } from './otlp-proto.js';

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

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
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
