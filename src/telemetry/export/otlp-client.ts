// One endpoint's OTLP/gRPC Export call. We make the call with grpc-js
// ourselves and serialise with the SDK's own ProtobufTraceSerializer, instead
// of going through OTLPTraceExporter, because the exporter (facts §1):
//  - reports partial success as plain SUCCESS (rejected spans are only a diag
//    warning), and the spec requires us to count them;
//  - hides the ServiceError trailers we need for RetryInfo behind an
//    ExportResult, and retries nothing;
//  - reads its metadata once, so a rotating token over plaintext is impossible.
// What remains is a unary call with a deadline, which grpc-js does well.
import * as grpc from '@grpc/grpc-js';
// The trace serializer alone: the package's index also loads the logs and
// metrics SDKs (~7 MB resident for nothing). The package has no exports map
// and is pinned to an exact version, so this path is stable for us.
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer/build/src/trace/protobuf/index.js';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { decodeRetryDelayMs, otlpTypes, TRACE_EXPORT_PATH } from '../otlp-proto.js';
import type { ChannelPlan } from '../auth/channel.js';

export type ExportOutcome =
  | { readonly kind: 'ok' }
  | { readonly kind: 'partial'; readonly rejectedSpans: number; readonly message: string }
  | { readonly kind: 'error'; readonly code: grpc.status; readonly message: string; readonly retryDelayMs?: number };

const identity = (b: Buffer): Buffer => b;

export function serializeSpans(spans: ReadableSpan[]): Buffer {
  const bytes = ProtobufTraceSerializer.serializeRequest(spans);
  if (!bytes) throw new Error('OTLP serializer produced no request');
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function parseExportResponse(body: Buffer): ExportOutcome {
  if (body.length === 0) return { kind: 'ok' };
  const { ExportTraceServiceResponse } = otlpTypes();
  const msg = ExportTraceServiceResponse.toObject(ExportTraceServiceResponse.decode(body), { longs: Number }) as {
    partialSuccess?: { rejectedSpans?: number; errorMessage?: string };
  };
  const ps = msg.partialSuccess;
  if (!ps || (!ps.rejectedSpans && !ps.errorMessage)) return { kind: 'ok' };
  return { kind: 'partial', rejectedSpans: ps.rejectedSpans ?? 0, message: ps.errorMessage ?? '' };
}

export class OtlpGrpcClient {
  private readonly client: grpc.Client;

  constructor(
    private readonly plan: ChannelPlan,
    private readonly headers: Readonly<Record<string, string>>,
  ) {
    this.client = new grpc.Client(plan.address, plan.credentials, plan.channelOptions);
  }

  /** Sends one serialised ExportTraceServiceRequest. Never rejects. */
  async export(body: Buffer, timeoutMs: number): Promise<ExportOutcome> {
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(this.headers)) metadata.set(k, v);
    if (this.plan.bearerInCallMetadata && this.plan.tokens) {
      try {
        metadata.set('authorization', `Bearer ${await this.plan.tokens.get()}`);
      } catch (err) {
        return { kind: 'error', code: grpc.status.UNAUTHENTICATED, message: (err as Error).message, retryDelayMs: undefined };
      }
    }
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(
        TRACE_EXPORT_PATH,
        identity,
        identity,
        body,
        metadata,
        { deadline: Date.now() + timeoutMs },
        (err, response) => {
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
        },
      );
    });
  }

  /** The token this client would send now (for invalidation after UNAUTHENTICATED). */
  currentToken(): string | undefined {
    return this.plan.tokens?.peek();
  }

  close(): void {
    this.client.close();
  }
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
  return { kind: 'error', code: err.code, message: `${grpc.status[err.code] ?? err.code}: ${err.details}`, retryDelayMs };
}
