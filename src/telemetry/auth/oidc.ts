// OIDC token sources with openid-client: client credentials, and RFC 8693
// token exchange of a workload identity token read from a file (a Kubernetes
// projected service-account token or a GitLab `id_tokens` JWT). Discovery is
// done once and retried after a failure; the subject token file is re-read on
// every exchange because projected tokens rotate on disk.
import { readFile } from 'node:fs/promises';
import { createPrivateKey, webcrypto } from 'node:crypto';
import type * as OpenId from 'openid-client';

// openid-client (with jose) is loaded only when an endpoint uses OIDC: most
// proxies never need it, and it is a noticeable share of the resident set.
let openIdModule: Promise<typeof OpenId> | undefined;
const openId = (): Promise<typeof OpenId> => (openIdModule ??= import('openid-client'));
import type { AuthSettings, OidcClientAuth } from '../export/settings.js';
import { TokenError, type IssuedToken, type TokenSource } from './token.js';
import { isLoopbackHost } from '../export/egress-policy.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

type OidcSettings = Extract<AuthSettings, { type: 'oidc_client_credentials' | 'oidc_token_exchange' }>;

async function readSecretFile(path: string, what: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    throw new TokenError(
      'TOKEN_FILE_UNREADABLE',
      `${what} file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

async function privateKey(path: string, keyId: string | undefined): Promise<{ key: webcrypto.CryptoKey; kid?: string }> {
  const pem = await readSecretFile(path, 'private key');
  let keyObject;
  try {
    keyObject = createPrivateKey(pem);
  } catch {
    throw new TokenError('TOKEN_CONFIG_INVALID', `private key file ${path} is not a PEM private key`);
  }
  const der = keyObject.export({ format: 'der', type: 'pkcs8' });
  const type = keyObject.asymmetricKeyType;
  const algorithm =
    type === 'rsa'
      ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
      : type === 'ec'
        ? { name: 'ECDSA', namedCurve: keyObject.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : 'P-256' }
        : type === 'ed25519'
          ? { name: 'Ed25519' }
          : undefined;
  if (!algorithm) throw new TokenError('TOKEN_CONFIG_INVALID', `private key file ${path}: key type ${type} is not supported`);
  const key = await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
  return keyId ? { key, kid: keyId } : { key };
}

async function clientAuth(
  client: typeof OpenId,
  auth: OidcClientAuth,
): Promise<{ metadata?: Partial<OpenId.ClientMetadata>; auth: OpenId.ClientAuth }> {
  switch (auth.method) {
    case 'client_secret':
      return { auth: client.ClientSecretPost(await readSecretFile(auth.clientSecretFile, 'client secret')) };
    case 'private_key_jwt':
      return { auth: client.PrivateKeyJwt(await privateKey(auth.privateKeyFile, auth.keyId)) };
    case 'none':
      return { auth: client.None() };
  }
}

function describe(kind: string, err: unknown, client: typeof OpenId | undefined): TokenError {
  if (err instanceof TokenError) return err;
  if (client && err instanceof client.ResponseBodyError) {
    return new TokenError('TOKEN_FETCH_FAILED', `${kind}: token endpoint answered HTTP ${err.status} ${err.error}`);
  }
  const e = err as { code?: string; name?: string };
  return new TokenError('TOKEN_FETCH_FAILED', `${kind}: ${e.code ?? e.name ?? 'request failed'}`);
}

export function oidcTokenSource(s: OidcSettings, options: { timeoutSeconds?: number } = {}): TokenSource {
  let config: Promise<OpenId.Configuration> | undefined;
  let client: typeof OpenId | undefined;
  const kind = s.type;

  async function configure(client: typeof OpenId): Promise<OpenId.Configuration> {
    const { auth } = await clientAuth(client, s.clientAuth);
    const base = s.issuer ?? s.tokenEndpoint;
    if (!base) throw new TokenError('TOKEN_CONFIG_INVALID', `${kind}: neither issuer nor token_endpoint is set`);
    const insecure = new URL(base).protocol === 'http:';
    if (insecure && !isLoopbackHost(new URL(base).hostname)) {
      throw new TokenError('TOKEN_CONFIG_INVALID', `${kind}: plaintext http identity provider is only allowed on loopback`);
    }
    let cfg: OpenId.Configuration;
    if (s.issuer) {
      cfg = await client.discovery(new URL(s.issuer), s.clientId, undefined, auth, {
        timeout: options.timeoutSeconds ?? 10,
        ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
      });
    } else {
      cfg = new client.Configuration({ issuer: new URL(base).origin, token_endpoint: base }, s.clientId, undefined, auth);
      if (insecure) client.allowInsecureRequests(cfg);
    }
    cfg.timeout = options.timeoutSeconds ?? 10;
    return cfg;
  }

  function params(): Record<string, string> {
    const p: Record<string, string> = {};
    if (s.scope) p.scope = s.scope;
    if (s.resource) p.resource = s.resource;
    if (s.audience) p.audience = s.audience;
    return p;
  }

  return {
    kind,
    async fetch(): Promise<IssuedToken> {
      try {
        client ??= await openId();
        config ??= configure(client);
        let cfg: OpenId.Configuration;
        try {
          cfg = await config;
        } catch (err) {
          config = undefined; // rediscover next time
          throw err;
        }
        // A private_key_jwt assertion or a rotated secret file is read per configuration; a
        // fresh subject token is read per exchange.
        const res =
          s.type === 'oidc_client_credentials'
            ? await client.clientCredentialsGrant(cfg, params())
            : await client.genericGrantRequest(cfg, TOKEN_EXCHANGE_GRANT, {
                ...params(),
                subject_token: await readSecretFile(s.subjectTokenFile, 'subject token'),
                subject_token_type: s.subjectTokenType,
                requested_token_type: ACCESS_TOKEN_TYPE,
              });
        if (!res.access_token) throw new TokenError('TOKEN_RESPONSE_INVALID', `${kind}: no access_token in the response`);
        const expiresIn = res.expiresIn();
        return { value: res.access_token, expiresAt: expiresIn === undefined ? undefined : Date.now() + expiresIn * 1000 };
      } catch (err) {
        throw describe(kind, err, client);
      }
    },
  };
}
