// Which exchanges may change a job's telemetry (docs/security.md#job-tokens).
// Every job on the runner can reach the proxy, so `PUT /api/v4/jobs/:id` and
// `PATCH /api/v4/jobs/:id/trace` may come from a neighbour job, not the
// runner. Only an exchange that presents the job token GitLab put in that
// job's 201 payload is the runner's. The tokens are kept here, in memory, as
// SHA-256 digests, for as long as the job is tracked, and are compared in
// constant time; nothing else in the proxy sees them (not the TrackedJob, so
// not the journal, the spool, a span, a log line or a metric).
//
// After a restart the journal names the job but holds no token. The first
// exchange for it that GitLab accepted (2xx) teaches the token: GitLab answers
// PUT and PATCH only after checking that the token is that job's
// (docs/security.md#job-tokens), so an accepted exchange proves it.
import { createHash, timingSafeEqual } from 'node:crypto';

export type TokenCheck =
  /** The exchange presented this job's token. */
  | 'match'
  /** It presented another token, or none. */
  | 'mismatch'
  /** The proxy does not know this job's token (resumed after a restart). */
  | 'unknown';

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/**
 * The digest a JobTokens keeps, as hex: what crosses to the telemetry worker
 * instead of the token (docs/architecture.md#telemetry-thread).
 */
export function tokenDigest(token: string): string {
  return digest(token).toString('hex');
}

export class JobTokens {
  private readonly tokens = new Map<number, Buffer>();

  get size(): number {
    return this.tokens.size;
  }

  learn(jobId: number, token: string): void {
    this.tokens.set(jobId, digest(token));
  }

  /** learn() from a digest made by tokenDigest(); a malformed one is forgotten instead. */
  learnDigest(jobId: number, hex: string): void {
    const known = Buffer.from(hex, 'hex');
    if (known.length === 32) this.tokens.set(jobId, known);
    else this.tokens.delete(jobId);
  }

  forget(jobId: number): void {
    this.tokens.delete(jobId);
  }

  check(jobId: number, presented: string | undefined): TokenCheck {
    const known = this.tokens.get(jobId);
    if (!known) return 'unknown';
    if (!presented) return 'mismatch';
    // Digests have one length, so the comparison time says nothing about the token.
    return timingSafeEqual(known, digest(presented)) ? 'match' : 'mismatch';
  }

  /**
   * The job whose token this is, if the proxy follows it: on an artifact
   * download the path names the dependency, and only the token says which job
   * is downloading (docs/metrics.md#artifact-transfers). One digest, then one
   * constant-time comparison per followed job; downloads are few per job.
   */
  holderOf(presented: string | undefined): number | undefined {
    if (!presented) return undefined;
    const d = digest(presented);
    for (const [jobId, known] of this.tokens) if (timingSafeEqual(known, d)) return jobId;
    return undefined;
  }
}

/**
 * The job token an exchange presents, the way GitLab reads it
 * (`params[:token] || env['HTTP_JOB_TOKEN']`): the JSON body's `token` (PUT),
 * else what the forwarding path found (the query's `token`, else `JOB-TOKEN`).
 */
export function presentedToken(bodyToken: unknown, fromRequest: string | undefined): string | undefined {
  if (typeof bodyToken === 'string' && bodyToken !== '') return bodyToken;
  return fromRequest || undefined;
}
