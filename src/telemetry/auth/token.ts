// A bearer token kept fresh for the exporter: fetched on first use, refreshed
// ahead of expiry (at 75–85 % of its lifetime, jittered so many proxies do not
// hit the identity provider together), one fetch in flight at a time. The token
// value never leaves this object except into gRPC metadata.

export interface IssuedToken {
  readonly value: string;
  /** ms since epoch; undefined when the issuer did not say. */
  readonly expiresAt?: number;
}

/** One way of obtaining a token (OIDC client credentials, token exchange, GCP metadata). */
export interface TokenSource {
  /** Short, secret-free description for logs, e.g. `oidc_client_credentials`. */
  readonly kind: string;
  fetch(): Promise<IssuedToken>;
}

export type TokenErrorCode = 'TOKEN_FETCH_FAILED' | 'TOKEN_FILE_UNREADABLE' | 'TOKEN_RESPONSE_INVALID' | 'TOKEN_CONFIG_INVALID';

/** Messages name the flow and the failure (HTTP status, OAuth error code), never a credential. */
export class TokenError extends Error {
  constructor(
    readonly code: TokenErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TokenError';
  }
}

export interface TokenEvents {
  onRefresh?: () => void;
  onFailure?: (error: TokenError) => void;
}

export interface TokenCacheOptions extends TokenEvents {
  now?: () => number;
  random?: () => number;
}

interface Held {
  value: string;
  refreshAt: number;
  expiresAt: number;
}

export class TokenCache {
  private held?: Held;
  private inflight?: Promise<string>;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(
    readonly source: TokenSource,
    private readonly options: TokenCacheOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  /** The cached value if it is still valid, without fetching. */
  peek(): string | undefined {
    const h = this.held;
    return h && this.now() < h.expiresAt ? h.value : undefined;
  }

  /** A valid token; fetches when there is none or it expired, refreshes in the background when due. */
  get(): Promise<string> {
    const h = this.held;
    const now = this.now();
    if (h && now < h.expiresAt) {
      if (now >= h.refreshAt) this.refresh().catch(() => undefined);
      return Promise.resolve(h.value);
    }
    return this.refresh();
  }

  /** The collector refused the token: forget it so the next `get()` fetches a new one. */
  invalidate(rejected?: string): void {
    if (rejected === undefined || this.held?.value === rejected) this.held = undefined;
  }

  private refresh(): Promise<string> {
    if (this.inflight) return this.inflight;
    const started = this.now();
    const p = this.source
      .fetch()
      .then(
        (token) => {
          const expiresAt = token.expiresAt ?? Number.POSITIVE_INFINITY;
          const lifetime = expiresAt - started;
          const refreshAt = Number.isFinite(lifetime)
            ? started + Math.max(0, lifetime) * (0.75 + 0.1 * this.random())
            : Number.POSITIVE_INFINITY;
          this.held = { value: token.value, refreshAt, expiresAt };
          this.options.onRefresh?.();
          return token.value;
        },
        (err: unknown) => {
          const error =
            err instanceof TokenError
              ? err
              : new TokenError('TOKEN_FETCH_FAILED', `${this.source.kind}: ${(err as Error)?.name ?? 'error'}`);
          this.options.onFailure?.(error);
          throw error;
        },
      )
      .finally(() => {
        this.inflight = undefined;
      });
    this.inflight = p;
    return p;
  }
}

/** `exp` of a JWT, in ms, without verifying it (we are its bearer, not its audience). */
export function jwtExpiry(jwt: string): number | undefined {
  const part = jwt.split('.')[1];
  if (!part) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
