import '../../support/grpc-test-roots.js'; // first: grpc-js reads its default roots when it loads
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type Metadata } from '@grpc/grpc-js';
import * as jose from 'jose';
import { Registry } from 'prom-client';
import { OtlpReceiver, type ExportAnswer } from '../../../src/telemetry/receiver.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { recordEvents, type LogEvent } from '../../support/memory-logger.js';
import { endpointFromPayload, TOKEN_TYPE_JWT, type AuthSettings } from '../../../src/telemetry/export/settings.js';
import { planChannel } from '../../../src/telemetry/auth/channel.js';
import { TokenCache } from '../../../src/telemetry/auth/token.js';
import { oidcTokenSource } from '../../../src/telemetry/auth/oidc.js';
import { endpointSettings, eventually, makeSpans, metric, resource } from '../../support/export.js';
import { startIdp, TOKEN_EXCHANGE, type TestIdp } from '../../support/oidc.js';
import { loopbackCertificate } from '../../support/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-auth-'));
const secretFile = join(dir, 'client-secret');
writeFileSync(secretFile, 'test-secret\n');

function bearer(md: Metadata): string | undefined {
  const v = md.get('authorization')[0];
  return typeof v === 'string' && v.startsWith('Bearer ') ? v.slice(7) : undefined;
}

/** A TLS receiver that checks the bearer JWT on every export; `revoke` makes it refuse chosen tokens. */
async function tlsReceiver(idp: TestIdp, revoked: Set<string>, seen: string[]) {
  const cert = loopbackCertificate();
  return new OtlpReceiver({
    tls: { key: cert.key, cert: cert.cert },
    verify: async (md): Promise<ExportAnswer | undefined> => {
      const token = bearer(md);
      if (!token) return { kind: 'error', code: status.UNAUTHENTICATED, details: 'no token' };
      seen.push(token);
      if (revoked.has(token)) return { kind: 'error', code: status.UNAUTHENTICATED, details: 'revoked' };
      try {
        await idp.verify(token);
        return undefined;
      } catch {
        return { kind: 'error', code: status.UNAUTHENTICATED, details: 'invalid token' };
      }
    },
  }).start();
}

const ccAuth = (issuer: string): AuthSettings => ({
  type: 'oidc_client_credentials',
  issuer,
  clientId: 'gitlab-otel',
  clientAuth: { method: 'client_secret', clientSecretFile: secretFile },
  scope: 'traces:write',
  resource: 'urn:gitlab-otel:collector',
});

t.test('client credentials over TLS: every export carries a valid JWT; UNAUTHENTICATED forces one refresh', async (t) => {
  const idp = await startIdp();
  const revoked = new Set<string>();
  const seen: string[] = [];
  const receiver = await tlsReceiver(idp, revoked, seen);
  const registry = new Registry();
  const logs: LogEvent[] = [];
  const ep = endpointSettings('secure', receiver.url, {
    auth: ccAuth(idp.issuer),
    tls: { caFile: loopbackCertificate().certFile, insecureSkipVerify: false },
  });
  const pipeline = await ExportPipeline.create({ endpoints: [ep], metrics: createExportMetrics(registry), log: recordEvents(logs) });
  t.teardown(async () => {
    await pipeline.shutdown(1000);
    await receiver.stop();
    await idp.close();
  });

  pipeline.submit(makeSpans(3), resource, [ep]);
  await receiver.waitForSpans(3, 15_000);
  t.equal(seen.length, 1);
  const first = seen[0]!;
  t.match(await idp.verify(first), { client_id: 'gitlab-otel', scope: 'traces:write' });

  // The collector revokes the token: one refresh, one retry, delivered once.
  revoked.add(first);
  pipeline.submit(makeSpans(2), resource, [ep]);
  await receiver.waitForSpans(5, 15_000);
  t.equal(receiver.spans.length, 5, 'no duplicates');
  t.equal(seen.length, 3, 'refused once, then accepted with a new token');
  t.equal(seen[1], first);
  t.not(seen[2], first, 'rotated token');
  t.equal(idp.grants.filter((g) => g === 'client_credentials').length, 2);
  t.equal(await metric(registry, 'gitlab_otel_auth_token_refreshes_total'), 2);
  const logText = JSON.stringify(logs);
  for (const token of seen) t.notOk(logText.includes(token), 'no token in the logs');
  t.notOk((await registry.metrics()).includes(first), 'no token in the metrics');
});

t.test('tokens are refreshed before they expire', async (t) => {
  const idp = await startIdp({ accessTokenTTL: 2 });
  const seen: string[] = [];
  const receiver = await tlsReceiver(idp, new Set(), seen);
  const cache = new TokenCache(oidcTokenSource(ccAuth(idp.issuer) as Extract<AuthSettings, { type: 'oidc_client_credentials' }>));
  const ep = endpointSettings('secure', receiver.url, {
    auth: ccAuth(idp.issuer),
    tls: { caFile: loopbackCertificate().certFile, insecureSkipVerify: false },
  });
  const pipeline = await ExportPipeline.create({
    endpoints: [ep],
    metrics: createExportMetrics(new Registry()),
    log: () => undefined,
    tokenSources: { secure: cache.source },
  });
  t.teardown(async () => {
    await pipeline.shutdown(1000);
    await receiver.stop();
    await idp.close();
  });
  pipeline.submit(makeSpans(1), resource, [ep]);
  await receiver.waitForSpans(1, 15_000);
  // Past the token's lifetime: the next export must carry a different, valid token.
  await new Promise((r) => setTimeout(r, 2300));
  pipeline.submit(makeSpans(1), resource, [ep]);
  await receiver.waitForSpans(2, 15_000);
  t.equal(seen.length, 2, 'the expired token was never sent');
  t.not(seen[0], seen[1]);
});

t.test('token exchange of a workload identity token read from a file (re-read on every exchange)', async (t) => {
  const idp = await startIdp();
  const seen: string[] = [];
  const revoked = new Set<string>();
  const receiver = await tlsReceiver(idp, revoked, seen);
  const subjectFile = join(dir, 'sa-token');
  writeFileSync(subjectFile, await idp.subjectToken('system:serviceaccount:ci:runner'));
  const auth: AuthSettings = {
    type: 'oidc_token_exchange',
    issuer: idp.issuer,
    clientId: 'gitlab-otel',
    clientAuth: { method: 'client_secret', clientSecretFile: secretFile },
    resource: 'urn:gitlab-otel:collector',
    subjectTokenFile: subjectFile,
    subjectTokenType: TOKEN_TYPE_JWT,
  };
  const ep = endpointSettings('exchanged', receiver.url, {
    auth,
    tls: { caFile: loopbackCertificate().certFile, insecureSkipVerify: false },
  });
  const registry = new Registry();
  const logs: LogEvent[] = [];
  const pipeline = await ExportPipeline.create({ endpoints: [ep], metrics: createExportMetrics(registry), log: recordEvents(logs) });
  t.teardown(async () => {
    await pipeline.shutdown(1000);
    await receiver.stop();
    await idp.close();
  });
  pipeline.submit(makeSpans(2), resource, [ep]);
  await receiver.waitForSpans(2, 15_000);
  t.ok(idp.grants.includes(TOKEN_EXCHANGE));
  t.same(idp.subjects, ['system:serviceaccount:ci:runner']);

  // The projected token rotates. The same pipeline's next exchange (forced by the collector
  // refusing the access token) must present the new file content, not a copy read at start.
  writeFileSync(subjectFile, await idp.subjectToken('system:serviceaccount:ci:rotated'));
  revoked.add(seen[0]!);
  pipeline.submit(makeSpans(1), resource, [ep]);
  await receiver.waitForSpans(3, 15_000);
  t.same(idp.subjects, ['system:serviceaccount:ci:runner', 'system:serviceaccount:ci:rotated'], 'the rotated file was read');

  // Then it rotates to garbage: the next exchange reads it and fails, counted in the log, no crash.
  writeFileSync(subjectFile, 'not-a-jwt');
  revoked.add(seen[seen.length - 1]!);
  pipeline.submit(makeSpans(1), resource, [ep]);
  await eventually(() => JSON.stringify(logs).includes('TOKEN_FETCH_FAILED'), 15_000, 'token fetch failure logged');
  t.same(idp.subjects.length, 2, 'the garbage subject token was not accepted');
  t.notOk(JSON.stringify(logs).includes('not-a-jwt'), 'the subject token is not in the log');
  t.equal(receiver.spans.length, 3, 'nothing delivered without a token');

  // A token source on its own reports the same failure with a stable code.
  const err = await oidcTokenSource(auth)
    .fetch()
    .then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
  t.equal(err?.code, 'TOKEN_FETCH_FAILED');
  t.match(err?.message, /invalid_grant/);
  t.notOk(err?.message.includes('not-a-jwt'), 'the subject token is not in the error');
});

t.test('bearer tokens over plaintext: loopback allowed, a remote host refused', async (t) => {
  const remote = endpointSettings('remote', 'http://10.1.2.3:4317', {
    auth: { type: 'gcp_workload_identity', audience: 'a', metadataUrl: 'http://127.0.0.1:1/' },
  });
  t.throws(() => planChannel(remote), { code: 'INSECURE_AUTH_REFUSED' });
  t.doesNotThrow(() => planChannel({ ...remote, allowInsecureAuth: true }));
  const registry = new Registry();
  const logs: LogEvent[] = [];
  const pipeline = await ExportPipeline.create({ endpoints: [remote], metrics: createExportMetrics(registry), log: recordEvents(logs) });
  t.teardown(() => pipeline.shutdown(500));
  pipeline.submit(makeSpans(4), resource, [remote]);
  t.equal(pipeline.health()[0]!.state, 'invalid');
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'endpoint_invalid' }), 4);
  t.match(logs[0], { event: 'endpoint_invalid', code: 'INSECURE_AUTH_REFUSED' });
});

t.test('GitLab payload endpoint with http_bearer_gcp_oidc: ID token from the metadata server', async (t) => {
  const keys = await jose.generateKeyPair('RS256');
  const requests: { audience: string | null; flavor: string | undefined; format: string | null }[] = [];
  const metadata = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({
      audience: url.searchParams.get('audience'),
      flavor: req.headers['metadata-flavor'] as string | undefined,
      format: url.searchParams.get('format'),
    });
    if (req.headers['metadata-flavor'] !== 'Google') {
      res.writeHead(403).end();
      return;
    }
    void new jose.SignJWT({ email: 'runner@project.iam.gserviceaccount.com' })
      .setProtectedHeader({ alg: 'RS256' })
      .setAudience(url.searchParams.get('audience') ?? '')
      .setIssuer('https://accounts.google.com')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(keys.privateKey)
      .then((jwt) => res.writeHead(200, { 'content-type': 'text/plain' }).end(jwt));
  });
  await new Promise<void>((r) => metadata.listen(0, '127.0.0.1', r));
  const metadataUrl = `http://127.0.0.1:${(metadata.address() as AddressInfo).port}/computeMetadata/v1/instance/service-accounts/default/identity`;
  // GCP ID tokens go only over TLS (grpcs://), and a loopback collector must be let in by name,
  // as an operator lets in a node-local one (docs/security.md#payload-endpoints).
  const cert = loopbackCertificate();
  const receiver = await new OtlpReceiver({
    tls: { key: cert.key, cert: cert.cert },
    verify: async (md) => {
      try {
        await jose.jwtVerify(bearer(md) ?? '', keys.publicKey, { audience: 'https://collector.example' });
        return undefined;
      } catch {
        return { kind: 'error', code: status.UNAUTHENTICATED };
      }
    },
  }).start();
  t.teardown(async () => {
    await receiver.stop();
    metadata.closeAllConnections();
    await new Promise((r) => metadata.close(r));
  });
  const converted = endpointFromPayload(
    {
      url: `grpcs://127.0.0.1:${receiver.port}`,
      auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'https://collector.example' } },
    },
    { metadataUrl, egress: { allowedHosts: [{ host: '127.0.0.1', port: receiver.port }] } },
  );
  if (!converted.ok) throw converted.error;
  const pipeline = await ExportPipeline.create({ endpoints: [], metrics: createExportMetrics(new Registry()), log: () => undefined });
  t.teardown(() => pipeline.shutdown(500));
  pipeline.submit(makeSpans(3), resource, [converted.endpoint]);
  await receiver.waitForSpans(3, 15_000);
  t.same(requests, [{ audience: 'https://collector.example', flavor: 'Google', format: 'full' }]);
  await eventually(() => pipeline.health()[0]?.state === 'up', 5000);
});
