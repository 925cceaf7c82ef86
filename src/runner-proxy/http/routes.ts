// Which exchanges between the runner and GitLab the proxy observes, and the
// contract between the forwarding path and the telemetry side. Everything not
// named here is forwarded without being looked at.

export type Route = 'job_request' | 'job_update' | 'trace_patch' | 'artifacts' | 'router_discovery' | 'runners' | 'other';

/**
 * What the proxy does with the runner's Job Router discovery call
 * (docs/runner-protocol.md#job-router). A runner with `FF_USE_JOB_ROUTER`
 * fetches jobs over gRPC from KAS once discovery succeeds, and those payloads
 * never cross the proxy:
 *   - `decline` (default): the proxy answers 501 itself; the runner then falls
 *     back to POST /api/v4/jobs/request through the proxy;
 *   - `pass`: discovery goes to GitLab; router-fetched jobs bypass telemetry.
 */
export type JobRouterMode = 'decline' | 'pass';
export const JOB_ROUTER_MODES: readonly JobRouterMode[] = ['decline', 'pass'];

const JOB_PATH = /\/api\/v4\/jobs\/(\d+)(\/trace|\/artifacts)?$/;

/** Classifies by method and path; the path may carry a relative-URL prefix before /api/v4. */
export function routeOf(method: string | undefined, pathname: string): { route: Route; jobId?: number } {
  if (pathname.endsWith('/api/v4/jobs/request')) return { route: method === 'POST' ? 'job_request' : 'other' };
  const m = JOB_PATH.exec(pathname);
  if (m) {
    const jobId = Number(m[1]);
    if (!Number.isSafeInteger(jobId)) return { route: 'other' };
    if (m[2] === '/trace') return { route: method === 'PATCH' ? 'trace_patch' : 'other', jobId };
    if (m[2] === '/artifacts') return { route: 'artifacts', jobId };
    return { route: method === 'PUT' ? 'job_update' : 'other', jobId };
  }
  if (pathname.endsWith('/api/v4/runners/router/discovery')) return { route: method === 'GET' ? 'router_discovery' : 'runners' };
  if (pathname.includes('/api/v4/runners')) return { route: 'runners' };
  return { route: 'other' };
}

/** Bodies larger than these are forwarded but not observed. */
export const OBSERVED_BODY_LIMITS = {
  /** The runner sends at most 1 MiB per PATCH (DefaultTracePatchLimit). */
  tracePatch: 1024 * 1024,
  jobUpdate: 256 * 1024,
  /** Workhorse rejects job requests over 32 KiB; anything larger is not a runner's. */
  jobRequest: 64 * 1024,
} as const;

export interface JobUpdateExchange {
  jobId: number;
  body: Buffer;
  /** The query's `token`, else the `JOB-TOKEN` header; the body's `token` comes first (docs/security.md#job-tokens). */
  jobToken?: string;
  status: number;
  /** GitLab's `Job-Status` response header (`canceling`, `canceled`, …). */
  jobStatus?: string;
  /** When the request arrived, epoch ns. */
  at: bigint;
}

export interface TracePatchExchange {
  jobId: number;
  /** The query's `token`, else the `JOB-TOKEN` header (docs/security.md#job-tokens). */
  jobToken?: string;
  /** Request `Content-Range: start-end` (inclusive, no unit). */
  contentRange?: string;
  /** The body as the chunks it arrived in: the log parser reads them in place, never joined (docs/job-log.md#one-pass-parser). */
  body: Buffer | readonly Buffer[];
  status: number;
  /** Response `Range: 0-size` (exclusive end). */
  range?: string;
  jobStatus?: string;
  at: bigint;
}

/**
 * An artifact upload (`POST /api/v4/jobs/:id/artifacts`) or download (`GET`)
 * that crossed the proxy, handed over once its exchange has ended, aborted or
 * not (docs/metrics.md#artifact-transfers). Plain data (numbers, strings, a
 * boolean), so it can be posted to another thread as is.
 */
export interface ArtifactTransferExchange {
  /** The id in the path: the uploading job's own; for a download, the job whose artifacts are fetched (a dependency). */
  jobId: number;
  direction: 'upload' | 'download';
  /** The query's `token`, else `JOB-TOKEN`: on a download, the downloading job's own token on current GitLab. */
  jobToken?: string;
  /** Body bytes forwarded: the request body of an upload, the response body of a download, up to where the exchange ended. */
  bytes: number;
  /** GitLab's status, once its answer's headers arrived; absent: none did (GitLab unreachable, or the runner left first). */
  status?: number;
  /** Whether the runner received GitLab's whole answer; false: the exchange was cut short. */
  complete: boolean;
}

/**
 * The telemetry side as the forwarding path sees it. The two `edit*` calls are
 * synchronous and sit on the path (the runner needs the edited bytes); the
 * forwarder catches anything they throw and forwards the original. The other
 * calls happen after the response has gone to the runner.
 */
export interface ExchangeObserver {
  /** Returns a replacement job-request body, or undefined to forward it as is. */
  editJobRequest(body: Buffer): Buffer | undefined;
  /** Returns replacement text for a 201 job payload, or undefined to forward it as is. */
  editJobPayload(payload: string, requestBody: Buffer | undefined, at: bigint): string | undefined;
  jobUpdate(exchange: JobUpdateExchange): void;
  /** Whether a log upload for `jobId` presenting `jobToken` would be observed; false: it is not held for telemetry at all. */
  observesTracePatch?(jobId: number, jobToken: string | undefined): boolean;
  tracePatch(exchange: TracePatchExchange): void;
  /** An artifact transfer ended; absent: artifact bodies are piped without being counted. */
  artifactTransfer?(exchange: ArtifactTransferExchange): void;
}
