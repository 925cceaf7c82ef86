// OIDC client credentials where the client proves itself with a JWT signed by
// its private key (private_key_jwt, RFC 7523): the identity provider knows only
// the public JWKS, so no shared secret exists anywhere. Exported over TLS to a
// collector that checks the access token on every call.
import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type Metadata } from '@grpc/grpc-js';
import * as jose from 'jose';
import { Registry } from 'prom-client';
import { OtlpReceiver, type ExportAnswer } from '../../../src/telemetry/receiver.js';
import { oidcTokenSource } from '../../../src/telemetry/auth/oidc.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { recordEvents, type LogEvent } from '../../support/memory-logger.js';
import type { AuthSettings } from '../../../src/telemetry/export/settings.js';
import { endpointSettings, eventually, makeSpans, metric, resource } from '../../support/export.js';
import { RESOURCE, startIdp, type TestIdp } from '../../support/oidc.js';
import { loopbackCertificate } from '../../support/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-pkjwt-'));

interface ClientKey {
  pemFile: string;
  pem: string;
  publicJwk: jose.JWK;
}

/** A key pair made now: the private key as a PEM file (what an operator mounts), the public half as a JWK. */
async function clientKey(alg: 'RS256' | 'ES256', kid: string | undefined, file: string): Promise<ClientKey> {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const pem = await jose.exportPKCS8(privateKey);
  const pemFile = join(dir, file);
  writeFileSync(pemFile, pem, { mode: 0o600 });
  const publicJwk = { ...(await jose.exportJWK(publicKey)), alg, use: 'sig', ...(kid ? { kid } : {}) };
  return { pemFile, pem, publicJwk };
}

function bearer(md: Metadata): string | undefined {
  const v = md.get('authorization')[0];
  return typeof v === 'string' && v.startsWith('Bearer ') ? v.slice(7) : undefined;
}

/** A TLS collector that verifies the bearer JWT (signature, issuer, audience) on every export. */
async function collector(t: Test, idp: TestIdp, seen: string[]): Promise<OtlpReceiver> {
  const cert = loopbackCertificate();
  const receiver = await new OtlpReceiver({
    tls: { key: cert.key, cert: cert.cert },
    verify: async (md): Promise<ExportAnswer | undefined> => {
      const token = bearer(md);
      if (!token) return { kind: 'error', code: status.UNAUTHENTICATED, details: 'no token' };
      seen.push(token);
      try {
        await idp.verify(token);
        return undefined;
      } catch {
        return { kind: 'error', code: status.UNAUTHENTICATED, details: 'invalid token' };
      }
    },
  }).start();
  t.teardown(() => receiver.stop());
  return receiver;
}

const pkjwtAuth = (issuer: string, clientId: string, privateKeyFile: string, keyId?: string): AuthSettings => ({
  type: 'oidc_client_credentials',
  issuer,
  clientId,
  clientAuth: { method: 'private_key_jwt', privateKeyFile, ...(keyId ? { keyId } : {}) },
  scope: 'traces:write',
  resource: RESOURCE,
});

const cases: { alg: 'RS256' | 'ES256'; kid?: string }[] = [
  { alg: 'RS256', kid: 'proxy-2025-01' },
  // No kid: the provider tries every registered key that fits the algorithm.
  { alg: 'ES256' },
];

for (const { alg, kid } of cases) {
  t.test(
    `private_key_jwt with an ${alg} key${kid ? ' and a key id' : ', no key id'}: every export carries a valid access token`,
    async (t) => {
      const key = await clientKey(alg, kid, `${alg}.pem`);
      const idp = await startIdp({ privateKeyJwtClients: [{ clientId: 'gitlab-otel-pkjwt', jwks: { keys: [key.publicJwk] } }] });
      t.teardown(() => idp.close());
      const seen: string[] = [];
      const receiver = await collector(t, idp, seen);
      const ep = endpointSettings('pkjwt', receiver.url, {
        auth: pkjwtAuth(idp.issuer, 'gitlab-otel-pkjwt', key.pemFile, kid),
        tls: { caFile: loopbackCertificate().certFile, insecureSkipVerify: false },
      });
      const registry = new Registry();
      const logs: LogEvent[] = [];
      const pipeline = await ExportPipeline.create({ endpoints: [ep], metrics: createExportMetrics(registry), log: recordEvents(logs) });
      t.teardown(() => pipeline.shutdown(1000));

      pipeline.submit(makeSpans(3), resource, [ep]);
      await receiver.waitForSpans(3, 15_000);
      pipeline.submit(makeSpans(2), resource, [ep]);
      await receiver.waitForSpans(5, 15_000);

      t.equal(receiver.spans.length, 5);
      t.ok(seen.length >= 2, 'a token on every export');
      t.equal(new Set(seen).size, 1, 'one token, cached across exports');
      t.match(await idp.verify(seen[0]!), { client_id: 'gitlab-otel-pkjwt', scope: 'traces:write', aud: RESOURCE });
      t.same(idp.grants, ['client_credentials'], 'one grant: the client authenticated with its key (it has no secret)');
      t.equal(await metric(registry, 'gitlab_otel_auth_token_refreshes_total', { endpoint: 'pkjwt' }), 1);
      await eventually(() => pipeline.health()[0]?.state === 'up', 5000, 'endpoint up');

      const visible = JSON.stringify(logs) + (await registry.metrics());
      t.notOk(visible.includes(seen[0]!), 'no access token in the logs or metrics');
      const keyBody = key.pem.split('\n')[1]!;
      t.notOk(visible.includes(keyBody), 'no private key material in the logs or metrics');
    },
  );
}

t.test('a key the identity provider does not know: invalid_client, counted, no call reaches the collector', async (t) => {
  const registered = await clientKey('ES256', 'k1', 'registered.pem');
  const impostor = await clientKey('ES256', 'k1', 'impostor.pem');
  const idp = await startIdp({ privateKeyJwtClients: [{ clientId: 'gitlab-otel-pkjwt', jwks: { keys: [registered.publicJwk] } }] });
  t.teardown(() => idp.close());

  const source = oidcTokenSource(
    pkjwtAuth(idp.issuer, 'gitlab-otel-pkjwt', impostor.pemFile, 'k1') as Extract<AuthSettings, { type: 'oidc_client_credentials' }>,
  );
  const err = await source.fetch().then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  );
  t.equal(err?.code, 'TOKEN_FETCH_FAILED');
  t.match(err?.message, /oidc_client_credentials: token endpoint answered HTTP 401 invalid_client/);

  const seen: string[] = [];
  const receiver = await collector(t, idp, seen);
  const ep = endpointSettings('pkjwt', receiver.url, {
    auth: pkjwtAuth(idp.issuer, 'gitlab-otel-pkjwt', impostor.pemFile, 'k1'),
    tls: { caFile: loopbackCertificate().certFile, insecureSkipVerify: false },
  });
  const registry = new Registry();
  const logs: LogEvent[] = [];
  const pipeline = await ExportPipeline.create({ endpoints: [ep], metrics: createExportMetrics(registry), log: recordEvents(logs) });
  pipeline.submit(makeSpans(2), resource, [ep]);
  await eventually(
    async () => (await metric(registry, 'gitlab_otel_auth_token_failures_total', { endpoint: 'pkjwt' })) >= 1,
    10_000,
    'token failure counted',
  );
  await eventually(() => pipeline.health()[0]?.state === 'failing', 5000, 'endpoint failing');
  await pipeline.shutdown(500);
  t.equal(receiver.calls.length, 0, 'without a token nothing is sent');
  t.same(idp.grants, [], 'no grant was issued');
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { endpoint: 'pkjwt' }), 2, 'the spans are counted');
  t.notOk(JSON.stringify(logs).includes(impostor.pem.split('\n')[1]!), 'no key material in the logs');
});

t.test('a private key file that is not a key is a configuration error naming the file, not its contents', async (t) => {
  const notAKey = join(dir, 'not-a-key.pem');
  writeFileSync(notAKey, 'CANARY-this-is-not-a-key');
  const source = oidcTokenSource(
    pkjwtAuth('http://127.0.0.1:1', 'c', notAKey) as Extract<AuthSettings, { type: 'oidc_client_credentials' }>,
  );
  const err = await source.fetch().then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  );
  t.equal(err?.code, 'TOKEN_CONFIG_INVALID');
  t.match(err?.message, /not-a-key\.pem is not a PEM private key/);
  t.notOk(err?.message.includes('CANARY'));

  const missing = oidcTokenSource(
    pkjwtAuth('http://127.0.0.1:1', 'c', join(dir, 'missing.pem')) as Extract<AuthSettings, { type: 'oidc_client_credentials' }>,
  );
  await t.rejects(missing.fetch(), { code: 'TOKEN_FILE_UNREADABLE', message: /missing\.pem cannot be read \(ENOENT\)/ });
});
