// The transport an endpoint exports through, chosen by its `protocol`
// (docs/export.md#transports): OTLP/gRPC unless the endpoint says http/protobuf.
import { planChannel } from '../auth/channel.js';
import { METRICS_EXPORT_PATH, TRACE_EXPORT_PATH } from '../otlp-proto.js';
import type { TokenEvents, TokenSource } from '../auth/token.js';
import type { EndpointSettings } from './settings.js';
import { OtlpGrpcClient } from './otlp-grpc.js';
import { OtlpHttpClient, planHttp } from './otlp-http.js';
import type { OtlpTransport } from './otlp-transport.js';

export { parseExportResponse, serializeSpans, type ExportFailure, type ExportOutcome, type OtlpTransport } from './otlp-transport.js';

/** What an export carries: the gRPC method follows it; an OTLP/HTTP URL is already the signal's (metric-endpoints.ts). */
export type OtlpSignal = 'traces' | 'metrics';

/** Throws EndpointConfigError when the endpoint cannot be used as configured. */
export function createTransport(
  settings: EndpointSettings,
  events: TokenEvents = {},
  source?: TokenSource,
  signal: OtlpSignal = 'traces',
): OtlpTransport {
  if (settings.protocol === 'http/protobuf')
    return new OtlpHttpClient(planHttp(settings, events, source), settings.headers, settings.compression);
  const path = signal === 'metrics' ? METRICS_EXPORT_PATH : TRACE_EXPORT_PATH;
  return new OtlpGrpcClient(source ? planChannel(settings, events, source) : planChannel(settings, events), settings.headers, path);
}
