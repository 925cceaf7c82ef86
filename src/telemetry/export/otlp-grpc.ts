// One endpoint's OTLP/gRPC Export call. We make the call with grpc-js
// ourselves and serialise with the SDK's own ProtobufTraceSerializer, instead
// of going through OTLPTraceExporter, because the exporter (docs/export.md#why-not-the-stock-exporter):
//  - reports partial success as plain SUCCESS (rejected spans are only a diag
//    warning), and the spec requires us to count them;
//  - hides the ServiceError trailers we need for RetryInfo behind an
//    ExportResult, and retries nothing;
//  - reads its metadata once, so a rotating token over plaintext is impossible.
// What remains is a unary call with a deadline, which grpc-js does well.
import * as grpc from '@grpc/grpc-js';
import { decodeRetryDelayMs, TRACE_EXPORT_PATH } from '../otlp-proto.js';
import type { ChannelPlan } from '../auth/channel.js';
import { classifyGrpcStatus } from './retry-policy.js';
import { parseExportResponse, type ExportFailure, type ExportOutcome, type OtlpTransport } from './otlp-transport.js';

const identity = (b: Buffer): Buffer => b;

export class OtlpGrpcClient implements OtlpTransport {
  readonly protocol = 'grpc';
  private readonly client: grpc.Client;

  constructor(
    private readonly plan: ChannelPlan,
    private readonly headers: Readonly<Record<string, string>>,
    /** The service method: traces by default, MetricsService/Export for metrics (docs/metrics.md#export). */
    private readonly path: string = TRACE_EXPORT_PATH,
  ) {
    this.client = new grpc.Client(plan.address, plan.credentials, plan.channelOptions);
  }

  /** Sends one serialised Export*ServiceRequest of this client's signal. Never rejects. */
  async export(body: Buffer, timeoutMs: number): Promise<ExportOutcome> {
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(this.headers)) metadata.set(k, v);
    if (this.plan.bearerInCallMetadata && this.plan.tokens) {
      try {
        metadata.set('authorization', `Bearer ${await this.plan.tokens.get()}`);
      } catch (err) {
        return grpcFailure(grpc.status.UNAUTHENTICATED, (err as Error).message, undefined);
      }
    }
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(this.path, identity, identity, body, metadata, { deadline: Date.now() + timeoutMs }, (err, response) => {
        if (err) {
          resolve(fromServiceError(err));
          return;
        }
        try {
          resolve(parseExportResponse(response ?? Buffer.alloc(0)));
        } catch {
          // The collector took the data but answered garbage: not retryable (we would duplicate).
          resolve({ kind: 'ok' });
        }
      });
    });
  }

  /** The token this client would send now (for invalidation after UNAUTHENTICATED). */
  currentToken(): string | undefined {
    return this.plan.tokens?.peek();
  }

  invalidateToken(): void {
    this.plan.tokens?.invalidate(this.currentToken());
  }

  close(): void {
    this.client.close();
  }
}

function grpcFailure(code: grpc.status, message: string, retryDelayMs: number | undefined): ExportFailure {
  return {
    kind: 'error',
    code: grpc.status[code] ?? String(code),
    failure: classifyGrpcStatus(code, retryDelayMs),
    message,
    ...(retryDelayMs !== undefined ? { retryDelayMs } : {}),
  };
}

function fromServiceError(err: grpc.ServiceError): ExportOutcome {
  let retryDelayMs: number | undefined;
  const details = err.metadata?.get('grpc-status-details-bin')[0];
  if (Buffer.isBuffer(details)) {
    try {
      retryDelayMs = decodeRetryDelayMs(details);
    } catch {
      retryDelayMs = undefined;
    }
  }
  // err.details is the server's text; it never carries our token (call
  // credentials failures are reported by grpc-js with our own TokenError message).
  return grpcFailure(err.code, `${grpc.status[err.code] ?? err.code}: ${err.details}`, retryDelayMs);
}
