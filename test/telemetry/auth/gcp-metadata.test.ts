// auth/gcp-metadata.ts against the loopback GCE metadata server
// (test/support/gcp-metadata.ts): the request it makes, the ID token and its
// expiry, and each way the metadata server can fail, as stable TokenError codes.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gcpIdentityTokenSource } from '../../../src/telemetry/auth/gcp-metadata.js';
import { jwtExpiry } from '../../../src/telemetry/auth/token.js';
import { IDENTITY_PATH, startMetadataServer } from '../../support/gcp-metadata.js';

t.test('asks for a full-format ID token for the audience, with Metadata-Flavor: Google', async (t) => {
  const md = await startMetadataServer();
  t.teardown(() => md.close());
  const token = await gcpIdentityTokenSource({ audience: 'https://collector.example', metadataUrl: md.identityUrl }).fetch();
  t.same(md.requests, [{ audience: 'https://collector.example', format: 'full', flavor: 'Google' }]);
  t.equal(token.value, md.issued[0]);
  const claims = await md.verify(token.value, 'https://collector.example');
  t.equal(token.expiresAt, (claims.exp as number) * 1000);
  t.equal(token.expiresAt, jwtExpiry(token.value));
});

t.test('an HTTP error is TOKEN_FETCH_FAILED with the status, never the body', async (t) => {
  const md = await startMetadataServer();
  t.teardown(() => md.close());
  const wrongPath = md.identityUrl.replace(IDENTITY_PATH, '/computeMetadata/v1/other');
  await t.rejects(gcpIdentityTokenSource({ audience: 'a', metadataUrl: wrongPath }).fetch(), {
    name: 'TokenError',
    code: 'TOKEN_FETCH_FAILED',
    message: 'gcp_workload_identity: metadata server answered HTTP 404',
  });
});

t.test('unreachable: TOKEN_FETCH_FAILED; a body that is not a JWT: TOKEN_RESPONSE_INVALID', async (t) => {
  const server = http.createServer((_req, res) => res.end('<html>captive portal</html>'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await t.rejects(gcpIdentityTokenSource({ audience: 'a', metadataUrl: `http://127.0.0.1:${port}${IDENTITY_PATH}` }).fetch(), {
    code: 'TOKEN_RESPONSE_INVALID',
    message: /did not return a JWT/,
  });
  await new Promise<void>((r) => server.close(() => r()));
  // The port is closed now: a refused connection.
  await t.rejects(
    gcpIdentityTokenSource({ audience: 'a', metadataUrl: `http://127.0.0.1:${port}${IDENTITY_PATH}`, timeoutMs: 2000 }).fetch(),
    {
      code: 'TOKEN_FETCH_FAILED',
      message: /metadata server unreachable/,
    },
  );
});
