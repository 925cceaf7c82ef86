// What crosses between the forwarding thread and the telemetry worker
// (docs/architecture.md#telemetry-thread). Plain data only: structured clone
// keeps bigint and plain objects; bodies travel as one ArrayBuffer each,
// transferred, never as a view of a pooled buffer (docs/performance.md#telemetry-on-a-worker-thread).
// No token crosses: jobs carry their token's digest; job updates and log
// uploads carry the token they presented, for the worker's own check, as
// they did in-process.
import type { Registry } from 'prom-client';
import type { LogFields, LogLevel } from '../../log.js';
import type { ArtifactTransferExchange } from '../http/routes.js';
import type { DecidedJob } from '../job/job-decision.js';
import type { FollowedJob } from '../job/tracker.js';
import type { TelemetryHealth } from '../telemetry-side.js';
import type { EncodedConfig } from './config-codec.js';

/** Observed exchanges, in the order the forwarding thread saw them. */
export type ExchangeMessage =
  | { readonly type: 'track'; readonly job: DecidedJob }
  | {
      readonly type: 'job-update';
      readonly jobId: number;
      readonly body: ArrayBuffer;
      readonly jobToken?: string;
      readonly status: number;
      readonly jobStatus?: string;
      readonly at: bigint;
    }
  | {
      readonly type: 'trace-patch';
      readonly jobId: number;
      readonly jobToken?: string;
      readonly contentRange?: string;
      readonly body: ArrayBuffer;
      readonly status: number;
      readonly range?: string;
      readonly jobStatus?: string;
      readonly at: bigint;
    }
  /** An artifact transfer's count (docs/metrics.md#artifact-transfers): no body, a few numbers and strings. */
  | ({ readonly type: 'artifact-transfer' } & Readonly<ArtifactTransferExchange>);

export type ToWorker =
  /**
   * The exchanges observed over a few milliseconds, in order, as one message: one wake-up of the worker and one
   * structured clone per batch rather than per exchange (docs/performance.md#telemetry-on-a-worker-thread).
   */
  | { readonly type: 'exchanges'; readonly batch: readonly ExchangeMessage[] }
  | { readonly type: 'metrics'; readonly id: number }
  | { readonly type: 'flush'; readonly id: number; readonly timeoutMs: number }
  | { readonly type: 'stop'; readonly flushTimeoutMs: number }
  /** Honoured only when the worker's environment has GITLAB_OTEL_TEST_WORKER_CRASH=1 (tests; docs/architecture.md#telemetry-thread). */
  | { readonly type: 'test-crash' };

/** A registry's metrics as prom-client's getMetricsAsJSON gives them (AggregatorRegistry.aggregate sums them). */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

export type FromWorker =
  /** Started: the jobs it resumed from the journal are followed. */
  | { readonly type: 'ready'; readonly jobs: FollowedJob[] }
  /** Could not start (the first start fails the proxy's start, as in-process). */
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'job-ended'; readonly jobId: number; readonly jobSpanId: string }
  | { readonly type: 'token-learned'; readonly jobId: number; readonly digest: string }
  | { readonly type: 'health'; readonly health: TelemetryHealth }
  /** Body bytes handled so far (cumulative): what the forwarding thread counts as in flight is posted minus this. */
  | { readonly type: 'progress'; readonly bytes: number }
  | { readonly type: 'metrics'; readonly id: number; readonly json: MetricsJson; readonly text: string }
  | { readonly type: 'flushed'; readonly id: number }
  | { readonly type: 'log'; readonly level: LogLevel; readonly msg: string; readonly fields?: LogFields }
  | { readonly type: 'stopped' };

/** What the worker is started with (workerData). */
export interface WorkerStart {
  readonly config: EncodedConfig;
}
