// The subset of opentelemetry-proto (trace, metrics without exponential
// histograms and summaries, and the collector services) and google.rpc
// status/RetryInfo that a receiver needs, written from the field numbers of the
// upstream .proto files. No npm package ships these files, and
// @opentelemetry/otlp-transformer (>= 0.218) has no request decoder.
import { createRequire } from 'node:module';
import type * as Protobuf from 'protobufjs';

const PROTO = `
syntax = "proto3";
package otlp;
message AnyValue {
  oneof value {
    string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
    ArrayValue array_value = 5; KeyValueList kvlist_value = 6; bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; }
message Status { string message = 2; int32 code = 3; }
message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
message Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; repeated KeyValue attributes = 4; fixed32 flags = 6; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4;
  string name = 5; int32 kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9; uint32 dropped_attributes_count = 10; repeated Event events = 11;
  repeated Link links = 13; Status status = 15; fixed32 flags = 16;
}
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ExportTracePartialSuccess { int64 rejected_spans = 1; string error_message = 2; }
message ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1; }
message Any { string type_url = 1; bytes value = 2; }
message RpcStatus { int32 code = 1; string message = 2; repeated Any details = 3; }
message Duration { int64 seconds = 1; int32 nanos = 2; }
message NumberDataPoint {
  repeated KeyValue attributes = 7; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
  oneof value { double as_double = 4; sfixed64 as_int = 6; } uint32 flags = 8;
}
message HistogramDataPoint {
  repeated KeyValue attributes = 9; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3; fixed64 count = 4;
  optional double sum = 5; repeated fixed64 bucket_counts = 6; repeated double explicit_bounds = 7; uint32 flags = 10;
  optional double min = 11; optional double max = 12;
}
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum { repeated NumberDataPoint data_points = 1; int32 aggregation_temporality = 2; bool is_monotonic = 3; }
message Histogram { repeated HistogramDataPoint data_points = 1; int32 aggregation_temporality = 2; }
message Metric { string name = 1; string description = 2; string unit = 3; oneof data { Gauge gauge = 5; Sum sum = 7; Histogram histogram = 9; } }
message ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2; string schema_url = 3; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; string schema_url = 3; }
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message RetryInfo { Duration retry_delay = 1; }
`;

export interface OtlpTypes {
  ExportTraceServiceRequest: Protobuf.Type;
  ExportTraceServiceResponse: Protobuf.Type;
  RpcStatus: Protobuf.Type;
  RetryInfo: Protobuf.Type;
  ExportMetricsServiceRequest: Protobuf.Type;
}

let types: OtlpTypes | undefined;

/**
 * The message types, built on first use: the proxy needs them only when a
 * collector answers with a body or an error, so protobufjs stays unloaded in
 * the common case (it is several megabytes of resident memory).
 */
export function otlpTypes(): OtlpTypes {
  if (!types) {
    const protobuf = createRequire(import.meta.url)('protobufjs') as typeof Protobuf;
    const root = protobuf.parse(PROTO, { keepCase: false }).root;
    types = {
      ExportTraceServiceRequest: root.lookupType('otlp.ExportTraceServiceRequest'),
      ExportTraceServiceResponse: root.lookupType('otlp.ExportTraceServiceResponse'),
      RpcStatus: root.lookupType('otlp.RpcStatus'),
      RetryInfo: root.lookupType('otlp.RetryInfo'),
      ExportMetricsServiceRequest: root.lookupType('otlp.ExportMetricsServiceRequest'),
    };
  }
  return types;
}

export const TRACE_EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
export const METRICS_EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';
export const RETRY_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.RetryInfo';

/** The `grpc-status-details-bin` trailer value carrying a RetryInfo. */
export function encodeRetryInfoStatus(code: number, message: string, retryDelayMs: number): Buffer {
  const { RetryInfo, RpcStatus } = otlpTypes();
  const retryInfo = RetryInfo.encode(
    RetryInfo.create({
      retryDelay: { seconds: Math.floor(retryDelayMs / 1000), nanos: (retryDelayMs % 1000) * 1_000_000 },
    }),
  ).finish();
  return Buffer.from(
    RpcStatus.encode(RpcStatus.create({ code, message, details: [{ typeUrl: RETRY_INFO_TYPE_URL, value: retryInfo }] })).finish(),
  );
}

/** The retry delay a `grpc-status-details-bin` trailer asks for, if it carries a RetryInfo. */
export function decodeRetryDelayMs(statusDetails: Buffer): number | undefined {
  const { RetryInfo, RpcStatus } = otlpTypes();
  const status = RpcStatus.decode(statusDetails) as unknown as {
    details?: { typeUrl?: string; value?: Uint8Array }[];
  };
  for (const detail of status.details ?? []) {
    if (detail.typeUrl !== RETRY_INFO_TYPE_URL || !detail.value) continue;
    const info = RetryInfo.toObject(RetryInfo.decode(detail.value), { longs: Number }) as {
      retryDelay?: { seconds?: number; nanos?: number };
    };
    const seconds = info.retryDelay?.seconds ?? 0;
    const nanos = info.retryDelay?.nanos ?? 0;
    return seconds * 1000 + nanos / 1e6;
  }
  return undefined;
}

export function encodePartialSuccess(rejectedSpans: number, errorMessage: string): Buffer {
  const { ExportTraceServiceResponse } = otlpTypes();
  return Buffer.from(
    ExportTraceServiceResponse.encode(ExportTraceServiceResponse.create({ partialSuccess: { rejectedSpans, errorMessage } })).finish(),
  );
}
