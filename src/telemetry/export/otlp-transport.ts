// The seam between an endpoint's queue/retry loop and the wire: one Export
// call of an already serialised ExportTraceServiceRequest, over OTLP/gRPC
// (otlp-grpc.ts) or OTLP/HTTP (otlp-http.ts). Transports classify their own
// failures (retry-policy.ts) so the endpoint runs one retry loop for both
// (docs/export.md#transports).
// The trace serializer alone: the package's index also loads the logs and
// metrics SDKs (~7 MB resident for nothing). The package has no exports map
// and is pinned to an exact version, so this path is stable for us.
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer/build/src/trace/protobuf/index.js';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { otlpTypes } from '../otlp-proto.js';
import type { FailureClass } from './retry-policy.js';

export type ExportFailure = {
  readonly kind: 'error';
  /**
   * Stable name for metrics, logs and /healthz: a gRPC status name
   * (`UNAVAILABLE`), `HTTP_503`, or a network error code (`ECONNREFUSED`). Never text from the wire.
   */
  readonly code: string;
  readonly failure: FailureClass;
  readonly message: string;
  /** What the collector asked us to wait (gRPC RetryInfo, HTTP Retry-After). */
  readonly retryDelayMs?: number;
};

export type ExportOutcome =
  { readonly kind: 'ok' } | { readonly kind: 'partial'; readonly rejectedSpans: number; readonly message: string } | ExportFailure;

export interface OtlpTransport {
  readonly protocol: 'grpc' | 'http/protobuf';
  /** Sends one serialised ExportTraceServiceRequest. Never rejects. */
  export(body: Buffer, timeoutMs: number): Promise<ExportOutcome>;
  /** The collector refused our token: the next export fetches a new one. */
  invalidateToken(): void;
  close(): void;
}

export function serializeSpans(spans: ReadableSpan[]): Buffer {
  const bytes = ProtobufTraceSerializer.serializeRequest(spans);
  if (!bytes) throw new Error('OTLP serializer produced no request');
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** An ExportTraceServiceResponse: empty or without partial_success is full success. */
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
