// The forwarding thread's view of the jobs the telemetry worker follows
// (docs/architecture.md#telemetry-thread): their ids and their token digests,
// so that an exchange for a job nobody follows, or a log upload that presents
// another job's token, is neither held nor posted. It answers
// `observesTracePatch` on the path, as the tracker does in-process; the
// worker stays authoritative and checks tokens again. Kept current from the
// decisions made here and from the worker's 'ready' (jobs resumed from the
// journal), 'job-ended' and 'token-learned' messages; cleared when the worker
// dies. Pure: no I/O.
import type { DecidedJob } from '../job/job-decision.js';
import { JobTokens, type TokenCheck } from '../job/job-tokens.js';
import type { FollowedJob } from '../job/tracker.js';

export class FollowedJobs {
  private readonly jobs = new Map<number, FollowedJob>();
  private readonly tokens = new JobTokens();

  get size(): number {
    return this.jobs.size;
  }

  has(jobId: number): boolean {
    return this.jobs.has(jobId);
  }

  /** A job this thread just decided (it replaces an earlier assignment of the same id). */
  decided(job: DecidedJob): void {
    const id = job.view.jobId;
    this.jobs.set(id, {
      jobId: id,
      jobSpanId: job.jobSpanId,
      traceId: job.traceId,
      sampled: job.sampled,
      exported: job.contract !== 'none',
    });
    if (job.tokenDigest) this.tokens.learnDigest(id, job.tokenDigest);
    else this.tokens.forget(id);
  }

  /** Jobs the worker resumed from the journal: their tokens are not known until GitLab accepts one. */
  resumed(jobs: readonly FollowedJob[]): void {
    for (const j of jobs) {
      if (this.jobs.has(j.jobId)) continue;
      this.jobs.set(j.jobId, j);
      this.tokens.forget(j.jobId);
    }
  }

  /** The worker ended a job. `jobSpanId` tells an ended assignment from a newer one of the same job id. */
  ended(jobId: number, jobSpanId: string): void {
    if (this.jobs.get(jobId)?.jobSpanId !== jobSpanId) return;
    this.jobs.delete(jobId);
    this.tokens.forget(jobId);
  }

  tokenLearned(jobId: number, digest: string): void {
    if (this.jobs.has(jobId)) this.tokens.learnDigest(jobId, digest);
  }

  /** Forgets a job (its 'track' message could not be posted). */
  forget(jobId: number): void {
    this.jobs.delete(jobId);
    this.tokens.forget(jobId);
  }

  /** The worker is gone: it follows nothing until its successor says what it resumed. */
  clear(): void {
    for (const id of this.jobs.keys()) this.tokens.forget(id);
    this.jobs.clear();
  }

  /** `untracked`, or the token check as the tracker makes it ('unknown': resumed job, GitLab's answer decides). */
  check(jobId: number, presented: string | undefined): TokenCheck | 'untracked' {
    if (!this.jobs.has(jobId)) return 'untracked';
    return this.tokens.check(jobId, presented);
  }

  /** The trace context handed to a job with telemetry (for tests and the demo, as JobTracker.jobContext). */
  jobContext(jobId: number): { traceId: string; spanId: string; sampled: boolean } | undefined {
    const j = this.jobs.get(jobId);
    return j?.exported ? { traceId: j.traceId, spanId: j.jobSpanId, sampled: j.sampled } : undefined;
  }
}
