// The ExchangeObserver of `telemetry.thread: worker` (docs/architecture.md#telemetry-thread).
// On the forwarding thread it keeps only what the runner must receive in
// time: the job request's advertisement and the job payload's decision and
// edit (job-decision.ts), both synchronous as in-process. Everything after
// GitLab's answer is posted to the telemetry worker as plain data, for the
// jobs it follows (followed-jobs.ts) and within the bound on bytes in flight.
import type { Counter } from 'prom-client';
import type { ArtifactTransferExchange, ExchangeObserver, JobUpdateExchange, TracePatchExchange } from '../http/routes.js';
import { editJobRequest } from '../job/job-assignment.js';
import type { JobDecider } from '../job/job-decision.js';
import type { FollowedJobs } from './followed-jobs.js';
import type { TelemetryWorkerHost } from './worker-host.js';

/**
 * One fresh ArrayBuffer holding the body, to be transferred: one copy per
 * body, then none. Never the chunks' own ArrayBuffers: a Buffer may be a view
 * into memory it shares (Buffer's 8 KiB pool, which small Buffer.concat and
 * Buffer.from results come from: a job update's body is one), and Node does
 * not detach the pool on transfer but clones the whole of it, neighbours'
 * bytes included; and the chunks stay referenced by the forwarding path
 * (docs/performance.md#telemetry-on-a-worker-thread has what was measured).
 */
export function ownedCopy(body: Buffer | readonly Buffer[]): ArrayBuffer {
  const chunks = Buffer.isBuffer(body) ? [body] : body;
  let size = 0;
  for (const c of chunks) size += c.length;
  const out = new ArrayBuffer(size);
  const view = new Uint8Array(out);
  let at = 0;
  for (const c of chunks) {
    view.set(c, at);
    at += c.length;
  }
  return out;
}

export class TelemetryThreadObserver implements ExchangeObserver {
  constructor(
    private readonly decider: JobDecider,
    private readonly followed: FollowedJobs,
    private readonly host: TelemetryWorkerHost,
    /** `gitlab_otel_unauthenticated_exchanges_total`, counted here for log uploads the gate turns away. */
    private readonly unauthenticated?: Counter<'route' | 'reason'>,
  ) {}

  editJobRequest(body: Buffer): Buffer | undefined {
    return editJobRequest(body);
  }

  editJobPayload(payload: string, requestBody: Buffer | undefined, at: bigint): string | undefined {
    const { edited, job } = this.decider.decide(payload, requestBody, at);
    if (job) {
      this.followed.decided(job);
      if (!this.host.post({ type: 'track', job })) this.followed.forget(job.view.jobId);
    }
    return edited;
  }

  jobUpdate(exchange: JobUpdateExchange): void {
    if (!this.followed.has(exchange.jobId)) return;
    const body = ownedCopy(exchange.body);
    this.host.post(
      {
        type: 'job-update',
        jobId: exchange.jobId,
        body,
        status: exchange.status,
        at: exchange.at,
        ...(exchange.jobToken !== undefined ? { jobToken: exchange.jobToken } : {}),
        ...(exchange.jobStatus !== undefined ? { jobStatus: exchange.jobStatus } : {}),
      },
      [body],
      body.byteLength,
    );
  }

  observesTracePatch(jobId: number, jobToken: string | undefined): boolean {
    const check = this.followed.check(jobId, jobToken);
    if (check === 'untracked') return false;
    // 'unknown' (resumed job): GitLab's answer decides, in the worker, so the body is needed.
    if (check !== 'mismatch') return true;
    this.unauthenticated?.inc({ route: 'trace_patch', reason: 'token_mismatch' });
    return false;
  }

  tracePatch(exchange: TracePatchExchange): void {
    if (!this.followed.has(exchange.jobId)) return;
    const body = ownedCopy(exchange.body);
    this.host.post(
      {
        type: 'trace-patch',
        jobId: exchange.jobId,
        body,
        status: exchange.status,
        at: exchange.at,
        ...(exchange.jobToken !== undefined ? { jobToken: exchange.jobToken } : {}),
        ...(exchange.contentRange !== undefined ? { contentRange: exchange.contentRange } : {}),
        ...(exchange.range !== undefined ? { range: exchange.range } : {}),
        ...(exchange.jobStatus !== undefined ? { jobStatus: exchange.jobStatus } : {}),
      },
      [body],
      body.byteLength,
    );
  }

  /**
   * Every artifact transfer, followed job or not: a download's path names the
   * dependency, and only the worker's tracker can tell from the token whose it
   * is (docs/metrics.md#artifact-transfers). No body, so nothing counts in flight.
   */
  artifactTransfer(exchange: ArtifactTransferExchange): void {
    this.host.post({ type: 'artifact-transfer', ...exchange });
  }
}
