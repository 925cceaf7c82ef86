// How a job ended, as the proxy learns it (docs/runner-protocol.md#job-updates):
// the final state of the runner's accepted job update, its failure_reason and
// exit code; `canceled` when GitLab said so (Job-Status: canceling/canceled);
// `abandoned` when no final state ever came. One type for the job span and the
// stage spans alike.
export type JobOutcome =
  | { readonly state: 'success' }
  | { readonly state: 'failed'; readonly failureReason?: string; readonly exitCode?: number }
  | { readonly state: 'canceled'; readonly failureReason?: string }
  /** The job never reported a final state (runner gone, proxy lost track). */
  | { readonly state: 'abandoned' };

/** The failure reason the outcome carries; an abandoned job's is `abandoned`. */
export function failureReasonOf(outcome: JobOutcome): string | undefined {
  if (outcome.state === 'abandoned') return 'abandoned';
  return outcome.state === 'success' ? undefined : outcome.failureReason;
}
