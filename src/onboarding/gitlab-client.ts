// Gitbeaker with our HTTP policy underneath (docs/onboarding.md#http-policy).
//
// Gitbeaker 43.8's own request handler retries 429 and 502 for every method,
// POST included, ten times in about 0.3 s, and ignores Retry-After. We keep
// Gitbeaker's resources, option handling and error type, and replace only its
// request handler (`requesterFn`):
//   - GET/PUT/DELETE (and GraphQL queries) retry 429 and 5xx (and timeouts,
//     dropped connections) with backoff, honouring Retry-After / RateLimit-Reset;
//   - POST is retried only on 429 (GitLab refused it before doing anything);
//     after a 5xx or a timeout it throws UncertainWriteError (with GitLab's
//     message when GitLab sent one) so the caller looks for the effect before
//     deciding to send it again;
//   - one 429 pauses every request of the client: for Retry-After when GitLab
//     sends it, otherwise for an exponential backoff up to GitLab's
//     application rate-limit window (60 s), because older GitLab versions send
//     application-limit 429s without any header;
//   - one request gives up on 429s once it has waited maxWaitMs in all;
//   - an optional requests-per-minute cap shared by every resource (Gitbeaker's
//     own limiters are per resource instance, and off here).
import { Gitlab, GitbeakerRequestError, GitbeakerTimeoutError } from '@gitbeaker/rest';
import {
  createRequesterFn,
  generateRateLimiterFn,
  type FormattedResponse,
  type RequestOptions,
  type ResourceOptions,
} from '@gitbeaker/requester-utils';
import pRetry, { AbortError } from 'p-retry';
import { OnboardingError, UncertainWriteError } from './errors.js';

export type GitLabApi = InstanceType<typeof Gitlab<false>>;

export interface GitLabClientOptions {
  /** Instance URL, e.g. https://gitlab.example.com (no /api/v4). */
  url: string;
  token: string;
  /** PRIVATE-TOKEN (personal, group, project or service-account token) or an OAuth bearer token. */
  tokenKind?: 'private' | 'oauth';
  /** Client-side cap, shared by every request of this client. */
  requestsPerMinute?: number;
  /** Per attempt. Default 30 s. */
  timeoutMs?: number;
  /** Retries of GET/PUT on 5xx, timeouts and dropped connections. Default 4. */
  retries?: number;
  /** First backoff delay for 5xx retries. Default 500 ms. */
  minBackoffMs?: number;
  /** How long one request may spend waiting out 429s, in all, before it fails RATE_LIMITED (--max-wait). Default 300 s. */
  maxWaitMs?: number;
  /** First wait after a 429 that carries no Retry-After / RateLimit-Reset; doubles per such 429. Default 1 s. */
  rateLimitBackoffMs?: number;
}

export interface ClientStats {
  /** HTTP requests sent (attempts, not calls). */
  requests: number;
  /** 429 responses received. */
  rateLimited: number;
  /** Attempts that were retries. */
  retries: number;
}

export interface GitLabClient {
  api: GitLabApi;
  stats: ClientStats;
  /**
   * POST /api/graphql with the same token, retry and rate-limit policy as
   * every REST call (a query changes nothing, so 5xx are retried). Returns
   * `data`; GraphQL `errors` throw GRAPHQL_ERROR with GitLab's messages.
   */
  graphql(query: string, variables: Record<string, unknown>): Promise<unknown>;
}

/** GitLab's application rate limits count in fixed windows of (at most) a minute (Gitlab::ApplicationRateLimiter). */
export const RATE_LIMIT_WINDOW_MS = 60_000;

/**
 * The wait after the `streak`-th consecutive 429 that named no delay:
 * base · 2^streak, at most the rate-limit window, plus up to one base of
 * jitter so concurrent clients do not come back together. Pure.
 */
export function headerlessBackoffMs(streak: number, baseMs: number, random: number): number {
  return Math.min(RATE_LIMIT_WINDOW_MS, baseMs * 2 ** Math.min(streak, 30)) + Math.floor(random * baseMs);
}

/**
 * The streak behind headerlessBackoffMs, counted in episodes, not answers:
 * the requests already in flight when a header-less 429 came back are
 * answered 429 too, and must not each double the pause. Only a 429 for a
 * request sent after the last pause began makes the next pause longer; only a
 * success for such a request ends the streak. Pure (times are passed in).
 */
export class HeaderlessBackoff {
  private streak = 0;
  private pausedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly baseMs: number) {}

  /** A header-less 429 for a request sent at `sentAt`: the pause to start now, or null when one is already running for it. */
  onLimited(sentAt: number, now: number, random: number): number | null {
    if (sentAt <= this.pausedAt) return null;
    this.pausedAt = now;
    return headerlessBackoffMs(this.streak++, this.baseMs, random);
  }

  /** Any other answer for a request sent at `sentAt`. */
  onAnswered(sentAt: number): void {
    if (sentAt > this.pausedAt) this.streak = 0;
  }
}

/**
 * How long a 429 (or 503) asks us to wait, in ms: Retry-After (seconds or an
 * HTTP date), else RateLimit-Reset (unix seconds), else undefined.
 */
export function retryDelayMs(headers: Headers, now = Date.now()): number | undefined {
  const retryAfter = headers.get('retry-after')?.trim();
  if (retryAfter) {
    if (/^\d+(\.\d+)?$/.test(retryAfter)) return Math.round(Number(retryAfter) * 1000);
    const at = Date.parse(retryAfter);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const reset = headers.get('ratelimit-reset')?.trim();
  if (reset && /^\d+$/.test(reset)) return Math.max(0, Number(reset) * 1000 - now);
  return undefined;
}

/** Holds every request of one client while a rate-limit pause is in force. */
class PauseGate {
  private until = 0;

  block(ms: number): void {
    this.until = Math.max(this.until, Date.now() + ms);
  }

  remaining(): number {
    return Math.max(0, this.until - Date.now());
  }

  async wait(): Promise<void> {
    for (let left = this.until - Date.now(); left > 0; left = this.until - Date.now()) {
      await new Promise((resolve) => setTimeout(resolve, left));
    }
  }
}

class RateLimited extends Error {
  constructor(readonly status: number) {
    super(`HTTP ${status}: rate limited`);
  }
}

class Transient extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE']);

/** What send() needs beyond Gitbeaker's RequestOptions: a read sent as POST (GraphQL) may be retried like a GET. */
type SendOptions = RequestOptions & { idempotent?: boolean };

export function createGitLabClient(options: GitLabClientOptions): GitLabClient {
  const stats: ClientStats = { requests: 0, rateLimited: 0, retries: 0 };
  const gate = new PauseGate();
  const cap = options.requestsPerMinute ? generateRateLimiterFn(options.requestsPerMinute, 60) : undefined;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxWaitMs = options.maxWaitMs ?? 300_000;
  const headerless = new HeaderlessBackoff(options.rateLimitBackoffMs ?? 1000);

  async function send(endpoint: string, opts: SendOptions): Promise<FormattedResponse> {
    const method = (opts.method ?? 'GET').toUpperCase();
    const url = new URL(endpoint, opts.prefixUrl?.endsWith('/') ? opts.prefixUrl : `${opts.prefixUrl ?? ''}/`);
    url.search = opts.searchParams ?? '';
    const idempotent = opts.idempotent ?? IDEMPOTENT.has(method);
    let firstLimitedAt: number | null = null;
    let waits = 0;

    const once = async (resend: boolean): Promise<FormattedResponse> => {
      if (resend) stats.retries += 1;
      await gate.wait();
      if (cap) await cap();
      stats.requests += 1;
      const sentAt = Date.now();
      let response: Response;
      // Not AbortSignal.timeout(): its timer (and what listens to it) would outlive a fast answer by timeoutMs.
      // fetch(url, init), not fetch(new Request(url, init)): a Request built from a Request follows its
      // signal through undici's FinalizationRegistry, whose held values keep both requests, their signals
      // and abort listeners alive until several GC cycles have run finalizers (nodejs/undici#1823).
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(new DOMException('timeout', 'TimeoutError')), timeoutMs);
      try {
        response = await fetch(url, { method, headers: opts.headers, body: opts.body, signal: abort.signal });
      } catch (err) {
        clearTimeout(timer);
        const detail = describeFetchError(err, timeoutMs);
        if (idempotent) throw new Transient(detail);
        if (isRefused(err)) throw new Transient(detail); // never reached GitLab: safe to send again
        throw new AbortError(new UncertainWriteError(method, endpoint, detail));
      }
      if (response.status !== 429) headerless.onAnswered(sentAt);
      if (response.ok) {
        try {
          return await parseResponse(response, method, endpoint, opts.asStream ?? false);
        } finally {
          if (!opts.asStream) clearTimeout(timer);
        }
      }
      clearTimeout(timer);
      if (response.status === 429) {
        stats.rateLimited += 1;
        await response.body?.cancel();
        const now = Date.now();
        firstLimitedAt ??= now;
        const named = retryDelayMs(response.headers);
        // Without a named delay, a pause already running for this request's episode is waited out as it is.
        const delay = named ?? headerless.onLimited(sentAt, now, Math.random()) ?? gate.remaining();
        const left = maxWaitMs - (now - firstLimitedAt);
        if (delay > left) throw new AbortError(new RateLimited(429));
        gate.block(delay);
        throw new RateLimited(429);
      }
      if (response.status >= 500) {
        const delay = retryDelayMs(response.headers);
        if (delay !== undefined) gate.block(Math.min(maxWaitMs, delay));
        if (idempotent) {
          await response.body?.cancel();
          throw new Transient(`HTTP ${response.status}`, response.status);
        }
        // GitLab's own 500s (render_api_error!) name what failed: keep the message for the caller.
        const message = await gitlabMessage(response);
        throw new AbortError(new UncertainWriteError(method, endpoint, `HTTP ${response.status}`, response.status, message));
      }
      throw new AbortError(await requestError(url, method, response));
    };

    // A 429 is waited out here, by the gate (Retry-After or the header-less backoff), not by p-retry: p-retry
    // gives up once its retries are used up even when shouldConsumeRetry says a failure does not count, so a
    // 429 after the last 5xx retry (or with retries: 0) would fail RATE_LIMITED without waiting. maxWaitMs
    // bounds these waits instead (an AbortError(RateLimited) from once() when the next wait would pass it);
    // docs/onboarding.md#http-policy.
    const attempt = async (n: number): Promise<FormattedResponse> => {
      for (let resend = n > 1; ; resend = true) {
        try {
          return await once(resend);
        } catch (err) {
          if (!(err instanceof RateLimited)) throw err;
          waits += 1;
        }
      }
    };

    try {
      return await pRetry(attempt, {
        retries: options.retries ?? 4,
        minTimeout: options.minBackoffMs ?? 500,
        factor: 2,
        randomize: true,
        maxTimeout: maxWaitMs,
      });
    } catch (err) {
      if (err instanceof RateLimited) {
        throw new OnboardingError(
          'RATE_LIMITED',
          `${method} ${endpoint}: still rate limited after ${waits} waits (--max-wait ${Math.round(maxWaitMs / 1000)} s)`,
          429,
        );
      }
      if (err instanceof Transient) {
        throw new OnboardingError('REQUEST_FAILED', `${method} ${endpoint}: ${err.message} after retries`, err.status);
      }
      throw err;
    }
  }

  const requesterFn = createRequesterFn(
    (_service: ResourceOptions, request: RequestOptions) => Promise.resolve(request),
    (endpoint, opts) => send(endpoint, opts ?? {}),
  );

  const base = options.url.replace(/\/+$/, '').replace(/\/api\/v4$/, '');
  const auth = options.tokenKind === 'oauth' ? { oauthToken: options.token } : { token: options.token };
  const api = new Gitlab({
    host: base,
    ...auth,
    requesterFn,
    // Timeouts are per attempt (above); Gitbeaker's one signal would span every retry and every Retry-After wait.
    queryTimeout: null,
    rateLimits: {},
  });

  const graphql = async (query: string, variables: Record<string, unknown>): Promise<unknown> => {
    const response = await send('graphql', {
      method: 'POST',
      prefixUrl: `${base}/api/`,
      // GitLab's GraphQL endpoint takes personal, group, project and OAuth tokens as a bearer token.
      headers: { authorization: `Bearer ${options.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query, variables }),
      idempotent: true,
    });
    const body = response.body as unknown;
    if (typeof body !== 'object' || body === null) {
      throw new OnboardingError('MALFORMED_RESPONSE', 'POST /api/graphql: GitLab returned no JSON object', response.status);
    }
    const { data, errors } = body as { data?: unknown; errors?: unknown };
    if (Array.isArray(errors) && errors.length > 0) {
      const messages = errors.map((e) =>
        typeof (e as { message?: unknown }).message === 'string' ? (e as { message: string }).message : '?',
      );
      throw new OnboardingError('GRAPHQL_ERROR', `POST /api/graphql: ${messages.join('; ')}`, response.status);
    }
    return data;
  };
  return { api, stats, graphql };
}

async function gitlabMessage(response: Response): Promise<string | undefined> {
  if (!(response.headers.get('content-type') ?? '').includes('application/json')) {
    await response.body?.cancel();
    return undefined;
  }
  try {
    const body = (await response.json()) as { message?: unknown; error?: unknown } | null;
    const m = body?.message ?? body?.error;
    return typeof m === 'string' && m !== '' ? m : undefined;
  } catch {
    return undefined;
  }
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; cause?: { code?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no response within ${timeoutMs} ms`;
  return `connection failed${e.cause?.code ? ` (${e.cause.code})` : ''}`;
}

function isRefused(err: unknown): boolean {
  const code = (err as { cause?: { code?: string } }).cause?.code;
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
}

async function parseResponse(response: Response, method: string, endpoint: string, asStream: boolean): Promise<FormattedResponse> {
  const headers = Object.fromEntries(response.headers.entries());
  if (asStream) return { body: response.body as unknown as FormattedResponse['body'], headers, status: response.status };
  if (response.status === 204) return { body: null as unknown as FormattedResponse['body'], headers, status: 204 };
  const type = (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
  const text = await response.text();
  if (type === 'application/json') {
    try {
      return { body: (text ? JSON.parse(text) : {}) as FormattedResponse['body'], headers, status: response.status };
    } catch {
      throw new AbortError(
        new OnboardingError(
          'MALFORMED_RESPONSE',
          `${method} ${endpoint}: GitLab answered ${response.status} with invalid JSON`,
          response.status,
        ),
      );
    }
  }
  return { body: text as FormattedResponse['body'], headers, status: response.status };
}

// The same error Gitbeaker throws (message = the body's `error`/`message`), but
// its `request` is rebuilt without headers so no token travels with the error.
async function requestError(url: URL, method: string, response: Response): Promise<GitbeakerRequestError> {
  const text = await response.text();
  let description = text;
  if ((response.headers.get('content-type') ?? '').includes('application/json')) {
    try {
      const body = JSON.parse(text) as { error?: unknown; message?: unknown } | null;
      const content = body?.error ?? body?.message ?? '';
      description = typeof content === 'string' ? content : JSON.stringify(content);
    } catch {
      description = text;
    }
  }
  return new GitbeakerRequestError(description, {
    cause: { description, request: new Request(url, { method }), response },
  });
}

/** The HTTP status behind an error from this client, if there was one. */
export function statusOf(err: unknown): number | undefined {
  if (err instanceof GitbeakerRequestError) return (err.cause as { response?: Response } | undefined)?.response?.status;
  if (err instanceof OnboardingError) return err.status;
  return undefined;
}

/** The error's message with a stable code, safe to print (no headers, no token). */
export function describeError(err: unknown): { code: string; message: string; status?: number } {
  const status = statusOf(err);
  if (err instanceof OnboardingError) return { code: err.code, message: err.message, ...(status ? { status } : {}) };
  if (err instanceof GitbeakerRequestError) {
    const code = status === 404 ? 'NOT_FOUND' : status === 401 ? 'AUTH_REJECTED' : status === 403 ? 'FORBIDDEN' : 'REQUEST_FAILED';
    return { code, message: `HTTP ${status ?? '?'}: ${err.message || 'no detail'}`, ...(status ? { status } : {}) };
  }
  if (err instanceof GitbeakerTimeoutError) return { code: 'REQUEST_FAILED', message: 'request timed out' };
  return { code: 'REQUEST_FAILED', message: err instanceof Error ? err.message : String(err) };
}
