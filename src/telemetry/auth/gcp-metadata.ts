// GCP workload identity: an ID token for one audience from the metadata
// server, the credential GitLab's `http_bearer_gcp_oidc` endpoint auth asks for.
import { jwtExpiry, TokenError, type IssuedToken, type TokenSource } from './token.js';

export interface GcpIdentitySettings {
  readonly audience: string;
  readonly metadataUrl: string;
  readonly timeoutMs?: number;
}

export function gcpIdentityTokenSource(s: GcpIdentitySettings): TokenSource {
  return {
    kind: 'gcp_workload_identity',
    async fetch(): Promise<IssuedToken> {
      const url = new URL(s.metadataUrl);
      url.searchParams.set('audience', s.audience);
      url.searchParams.set('format', 'full');
      let res: Response;
      try {
        res = await fetch(url, {
          headers: { 'Metadata-Flavor': 'Google' },
          signal: AbortSignal.timeout(s.timeoutMs ?? 5000),
        });
      } catch (err) {
        throw new TokenError('TOKEN_FETCH_FAILED', `gcp_workload_identity: metadata server unreachable (${(err as Error).name})`);
      }
      const body = (await res.text().catch(() => '')).trim();
      if (!res.ok) throw new TokenError('TOKEN_FETCH_FAILED', `gcp_workload_identity: metadata server answered HTTP ${res.status}`);
      if (body.split('.').length !== 3) {
        throw new TokenError('TOKEN_RESPONSE_INVALID', 'gcp_workload_identity: metadata server did not return a JWT');
      }
      return { value: body, expiresAt: jwtExpiry(body) };
    },
  };
}
