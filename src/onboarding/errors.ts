// Errors of the onboarding CLI. Each carries a stable `code` so callers (and
// the JSON report) can branch on it; messages name the problem and never
// contain a token.
export type OnboardingErrorCode =
  | 'CONFIG_MISSING_URL'
  | 'CONFIG_BAD_URL'
  | 'CONFIG_MISSING_TOKEN'
  | 'CONFIG_JOB_TOKEN_ONLY'
  | 'CONFIG_INSECURE_URL'
  | 'AUTH_REJECTED'
  | 'USAGE'
  | 'NOT_FOUND'
  | 'FORBIDDEN'
  | 'MALFORMED_RESPONSE'
  | 'WRITE_OUTCOME_UNKNOWN'
  | 'RATE_LIMITED'
  | 'REQUEST_FAILED'
  | 'TEMPLATE_MISSING'
  | 'GRAPHQL_ERROR'
  | 'WORKFLOW_NOT_STARTED'
  | 'WORKFLOW_STATUS_UNKNOWN';

export class OnboardingError extends Error {
  override readonly name = 'OnboardingError';
  constructor(
    readonly code: OnboardingErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * A write whose result is unknown: the request may or may not have been
 * performed (5xx, timeout or a broken connection after it was sent). The
 * caller must look for the effect before deciding to send it again.
 */
export class UncertainWriteError extends OnboardingError {
  constructor(
    method: string,
    endpoint: string,
    detail: string,
    status?: number,
    /** GitLab's own message, when the 5xx came from GitLab (render_api_error!) rather than a proxy. */
    readonly gitlabMessage?: string,
  ) {
    super(
      'WRITE_OUTCOME_UNKNOWN',
      `${method} ${endpoint}: outcome unknown (${detail}${gitlabMessage ? `: ${gitlabMessage}` : ''})`,
      status,
    );
  }
}
