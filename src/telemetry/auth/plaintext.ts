// One rule for credentials in clear, for every endpoint the proxy or an in-job
// command exports to (docs/security.md#plaintext-credentials): no bearer token,
// client secret or credential-bearing static header goes over plaintext to a
// host that is not loopback, unless the endpoint sets allow_insecure_auth.
// Pure: config validation calls it with a key path before anything is dialled,
// and the channel plan calls it again at run time.
import { isLoopbackHost } from '../export/egress-policy.js';

/**
 * Static headers known to carry no secret: tenant routing (Grafana Mimir/Tempo/Loki).
 * Every other static header may be an API key whatever its name (x-honeycomb-team,
 * dd-api-key, signoz-access-token, lightstep-access-token), so it counts as a credential.
 */
const NOT_SECRET = new Set(['x-scope-orgid']);

export function credentialHeaders(headers: Readonly<Record<string, string>>): string[] {
  return Object.keys(headers).filter((k) => !NOT_SECRET.has(k.toLowerCase()));
}

export interface PlaintextTarget {
  /** The endpoint URL as configured (`http://` = plaintext). */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The endpoint attaches a token (OIDC, GCP workload identity, an in-job ID token). */
  readonly token: boolean;
  readonly allowInsecureAuth: boolean;
}

export type PlaintextVerdict =
  | { readonly ok: true }
  /** `what`: which credential, for the message (`headers` or `auth`); never a value. */
  | { readonly ok: false; readonly what: 'headers' | 'auth'; readonly names: readonly string[] };

/** Whether credentials may travel to this endpoint. Unparseable URLs are left to the URL check. */
export function checkPlaintextCredentials(t: PlaintextTarget): PlaintextVerdict {
  if (t.allowInsecureAuth) return { ok: true };
  let url: URL;
  try {
    url = new URL(t.url);
  } catch {
    return { ok: true };
  }
  if (url.protocol === 'https:' || url.protocol === 'grpcs:') return { ok: true };
  if (isLoopbackHost(url.hostname)) return { ok: true };
  if (t.token) return { ok: false, what: 'auth', names: [] };
  const names = credentialHeaders(t.headers);
  if (names.length > 0) return { ok: false, what: 'headers', names };
  return { ok: true };
}
