// A PushMetricExporter that sends through the project's own OTLP transports
// (export/otlp-transport.ts), so metrics follow exactly the rules traces do:
// the same TLS, mTLS, bearer tokens refreshed per request, and the plaintext
// credential rule (docs/metrics.md#export). The SDK's periodic reader calls it
// once per interval with the aggregated ResourceMetrics; serialisation is the
// OpenTelemetry transformer's.
//
// A failed export is not retried or queued: with cumulative temporality the
// next interval carries the same totals, and with delta the loss is one
// interval's increments — either way memory stays bounded during an outage.
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
// The metrics serializer alone (the package index loads the logs SDK too); pinned version, stable path.
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer/build/src/metrics/protobuf/index.js';
import type { AggregationTemporality, InstrumentType, PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { ExportOutcome } from '../export/otlp-transport.js';
import { temporalitySelector, type TemporalityPreference } from './metric-env.js';

/** The part of an OtlpTransport a metric export needs: one call of a serialised ExportMetricsServiceRequest. */
export interface MetricTransport {
  export(body: Buffer, timeoutMs: number): Promise<ExportOutcome>;
  close(): void;
}

export type MetricExportListener = (outcome: ExportOutcome) => void;

export class OtlpMetricExporter implements PushMetricExporter {
  private readonly temporality: (kind: InstrumentType) => AggregationTemporality;
  private readonly inFlight = new Set<Promise<unknown>>();
  private closed = false;

  constructor(
    private readonly transport: MetricTransport,
    private readonly options: { timeoutMs: number; temporality: TemporalityPreference; onExport?: MetricExportListener },
  ) {
    this.temporality = temporalitySelector(options.temporality);
  }

  export(metrics: ResourceMetrics, done: (result: ExportResult) => void): void {
    if (this.closed) {
      done({ code: ExportResultCode.FAILED, error: new Error('metric exporter is shut down') });
      return;
    }
    let body: Buffer;
    try {
      const bytes = ProtobufMetricsSerializer.serializeRequest(metrics);
      if (!bytes) throw new Error('OTLP metrics serializer produced no request');
      body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      done({ code: ExportResultCode.FAILED, error: err as Error });
      return;
    }
    const call = this.transport.export(body, this.options.timeoutMs).then((outcome) => {
      this.options.onExport?.(outcome);
      done(
        outcome.kind === 'error'
          ? { code: ExportResultCode.FAILED, error: new Error(`${outcome.code}: ${outcome.message}`) }
          : { code: ExportResultCode.SUCCESS },
      );
    });
    this.inFlight.add(call);
    void call.finally(() => this.inFlight.delete(call));
  }

  selectAggregationTemporality(kind: InstrumentType): AggregationTemporality {
    return this.temporality(kind);
  }

  async forceFlush(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  async shutdown(): Promise<void> {
    this.closed = true;
    await this.forceFlush();
    this.transport.close();
  }
}
