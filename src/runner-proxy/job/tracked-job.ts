// What the tracker knows about one job with telemetry, from its assignment to
// its final update, and the journal record made from it. Metadata only: no
// token, no variable value (see journal.ts for what a record may hold).
import type { Resource } from '@opentelemetry/resources';
import type { EndpointSettings, PayloadOtelEndpoint } from '../../telemetry/export/settings.js';
import type { Contract } from '../wire/negotiation.js';
import type { JobView, RunnerView } from '../wire/payload.js';
import type { LogSpans } from '../job-log/log-spans.js';
import { configuredNames } from './job-endpoints.js';
import { journalView, JOURNAL_RECORD_VERSION, type JournalledJob } from './journal.js';
import type { SpanRoute } from './sampling-hold.js';
import type { SpanRecord } from '../../telemetry/spans.js';

export interface TrackedJob extends SpanRoute {
  readonly view: JobView;
  readonly runner: RunnerView;
  /** `none`: followed for CI/CD metrics only — nothing edited, exported or journalled (docs/metrics.md#every-job). */
  readonly contract: Contract | 'none';
  readonly traceId: string;
  readonly jobSpanId: string;
  /** undefined: the job span is a root span. */
  readonly parentSpanId?: string;
  readonly resource: Resource;
  readonly endpoints: readonly EndpointSettings[];
  /** As GitLab sent them: journalled instead of the settings made from them. */
  readonly payloadEndpoints: readonly PayloadOtelEndpoint[];
  /** When the 201 went to the runner. */
  readonly assignedAt: bigint;
  /** The runner's first job update or log upload (its ack): the job has started. */
  startedAt?: bigint;
  canceled: boolean;
  /** Stage spans from the job log; absent when the payload does not ask for trace sections. */
  logSpans?: LogSpans;
  /** Epoch ms after which the job is given up on. */
  readonly deadline: number;
  /** The runner's build-stage spans so far, for the CI/CD metrics at the job's end (a closed set: a dozen at most). */
  stageSpans?: SpanRecord[];
}

/** A job whose spans are exported (and journalled): any contract but `none`. */
export type ExportedJob = TrackedJob & { readonly contract: Contract };

export function isExported(job: TrackedJob): job is ExportedJob {
  return job.contract !== 'none';
}

/**
 * What the journal keeps of a payload endpoint: its URL without user info,
 * query or fragment, its auth type and audience; never the object as received
 * (docs/security.md#files).
 */
export function journalEndpoint(e: PayloadOtelEndpoint): PayloadOtelEndpoint {
  let url = e.url;
  try {
    const u = new URL(e.url);
    url = `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    // Served endpoints always parse (endpointFromPayload accepted them).
  }
  const audience = e.auth?.http_bearer_gcp_oidc?.audience;
  return {
    url,
    ...(e.auth ? { auth: { type: e.auth.type, ...(audience !== undefined ? { http_bearer_gcp_oidc: { audience } } : {}) } } : {}),
  };
}

/** The job's journal record. `configured`: the proxy's configured endpoints (named in the record, not copied). */
export function journalRecord(job: ExportedJob, configured: readonly EndpointSettings[]): JournalledJob {
  return {
    v: JOURNAL_RECORD_VERSION,
    job: journalView(job.view),
    runner: job.runner,
    contract: job.contract,
    traceId: job.traceId,
    jobSpanId: job.jobSpanId,
    ...(job.parentSpanId !== undefined ? { parentSpanId: job.parentSpanId } : {}),
    assignedAt: job.assignedAt.toString(),
    ...(job.startedAt !== undefined ? { startedAt: job.startedAt.toString() } : {}),
    canceled: job.canceled,
    deadline: job.deadline,
    endpoints: configuredNames(configured, job.endpoints),
    payloadEndpoints: job.payloadEndpoints.map(journalEndpoint),
    sampled: job.sampled,
    ...(job.logSpans ? { log: job.logSpans.snapshot() } : {}),
  };
}
