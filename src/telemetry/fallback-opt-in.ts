// Fallback mode (GitLab versions that send no telemetry contract): a job opts
// in with the CI/CD variable GITLAB_OTEL_TELEMETRY. The runner proxy reads it
// from the job payload and the in-job commands from their environment; both
// accept exactly the same values through this one predicate
// (docs/verification.md#readme-claims-and-their-tests).

/** `true`, `1`, `yes` or `on`, any case, surrounding spaces ignored. */
export function fallbackOptInValue(value: string | undefined): boolean {
  return /^(1|true|yes|on)$/i.test(value?.trim() ?? '');
}
