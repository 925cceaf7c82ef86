// auth/channel.ts: the plan for one endpoint's gRPC channel — address, TLS,
// where the bearer token goes, channel options — and each refusal with its
// stable code (docs/security.md#plaintext-credentials). planChannel reads files
// and builds credentials but dials nothing; the exports themselves are in
// test/telemetry/export/otlp-grpc.test.ts and test/telemetry/auth/{oidc,mtls}.test.ts.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EndpointConfigError, planChannel, readPem, tokenSourceFor } from '../../../src/telemetry/auth/channel.js';
import { EGRESS_GUARD_OPTION, EGRESS_SCHEME } from '../../../src/telemetry/export/egress-grpc.js';
import type { TokenSource } from '../../../src/telemetry/auth/token.js';
import { endpointSettings } from '../../support/export.js';

const source: TokenSource = { kind: 'test_source', fetch: async () => ({ value: 'tok' }) };

function refusal(f: () => unknown): EndpointConfigError {
  try {
    f();
  } catch (err) {
    if (err instanceof EndpointConfigError) return err;
    throw err;
  }
  throw new Error('expected an EndpointConfigError');
}

t.test('plaintext loopback: host:port (4317 by default), no token, options from the endpoint', async (t) => {
  const plan = planChannel(endpointSettings('e', 'http://127.0.0.1', { retry: { initialBackoffMs: 111, maxBackoffMs: 2222 } }));
  t.equal(plan.address, '127.0.0.1:4317');
  t.equal(plan.tls, false);
  t.equal(plan.tokens, undefined);
  t.equal(plan.bearerInCallMetadata, false);
  t.match(plan.channelOptions, {
    'grpc.default_compression_algorithm': 0,
    'grpc.initial_reconnect_backoff_ms': 111,
    'grpc.max_reconnect_backoff_ms': 2222,
  });
  t.equal(
    planChannel(endpointSettings('e', 'http://[::1]:5555', { compression: 'gzip' })).channelOptions['grpc.default_compression_algorithm'],
    2,
  );
  t.equal(planChannel(endpointSettings('e', 'http://[::1]:5555')).address, '[::1]:5555');
  // WHATWG URL hides a port equal to the scheme's default; gRPC's default is 4317, so a written :443 / :80 is dialled as written.
  t.equal(planChannel(endpointSettings('e', 'https://collector.example:443')).address, 'collector.example:443');
  t.equal(planChannel(endpointSettings('e', 'http://127.0.0.1:80')).address, '127.0.0.1:80');
  t.equal(planChannel(endpointSettings('e', 'HTTPS://collector.example')).address, 'collector.example:4317');
});

t.test('a token over plaintext: in the call metadata to loopback, refused to any other host unless allow_insecure_auth', async (t) => {
  const loop = planChannel(endpointSettings('e', 'http://127.0.0.1:4317'), {}, source);
  t.equal(loop.bearerInCallMetadata, true);
  t.ok(loop.tokens);
  const err = refusal(() => planChannel(endpointSettings('remote', 'http://collector.example:4317'), {}, source));
  t.equal(err.code, 'INSECURE_AUTH_REFUSED');
  t.match(err.message, /endpoint remote: a bearer token over plaintext gRPC to a non-loopback host is refused/);
  const allowed = planChannel(endpointSettings('remote', 'http://collector.example:4317', { allowInsecureAuth: true }), {}, source);
  t.equal(allowed.bearerInCallMetadata, true, 'allowed explicitly');
  const headerErr = refusal(() =>
    planChannel(endpointSettings('remote', 'http://collector.example:4317', { headers: { 'x-api-key': 'secret' } })),
  );
  t.equal(headerErr.code, 'INSECURE_AUTH_REFUSED');
  t.match(headerErr.message, /static headers \(x-api-key\)/);
  t.notMatch(headerErr.message, /secret/, 'the header is named, its value never');
});

t.test('TLS: the token goes through call credentials, not the metadata; unreadable PEM files and bad URLs are named', async (t) => {
  const tls = planChannel(endpointSettings('e', 'https://collector.example'), {}, source);
  t.equal(tls.tls, true);
  t.equal(tls.address, 'collector.example:4317');
  t.equal(tls.bearerInCallMetadata, false);
  t.ok(tls.tokens);
  const missing = refusal(() =>
    planChannel(endpointSettings('e', 'https://collector.example', { tls: { caFile: '/nonexistent/ca.pem', insecureSkipVerify: false } })),
  );
  t.equal(missing.code, 'TLS_FILE_UNREADABLE');
  t.match(missing.message, 'CA file /nonexistent/ca.pem cannot be read (ENOENT)');
  t.equal(refusal(() => planChannel(endpointSettings('bad', 'not a url'))).code, 'INVALID_ENDPOINT_URL');
});

t.test('readPem: absent path is null, a readable file its bytes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-channel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'ca.pem'), 'PEM');
  t.equal(readPem(undefined, 'CA file'), null);
  t.equal(readPem(join(dir, 'ca.pem'), 'CA file')?.toString(), 'PEM');
});

t.test('payload endpoints dial through the egress guard; token sources by auth type', async (t) => {
  const guarded = planChannel(endpointSettings('p', 'https://otel.example.com:443', { egress: { allowed: true, explicit: false } }));
  t.equal(guarded.address, `${EGRESS_SCHEME}:otel.example.com:443`);
  t.type(guarded.channelOptions[EGRESS_GUARD_OPTION], 'string');
  t.notOk(
    EGRESS_GUARD_OPTION in planChannel(endpointSettings('c', 'https://otel.example.com:443')).channelOptions,
    'configured endpoints are not guarded',
  );
  t.equal(tokenSourceFor(endpointSettings('n', 'http://127.0.0.1')), undefined);
  t.equal(
    tokenSourceFor(
      endpointSettings('g', 'https://c.example', {
        auth: { type: 'gcp_workload_identity', audience: 'a', metadataUrl: 'http://127.0.0.1:1/x' },
      }),
    )?.kind,
    'gcp_workload_identity',
  );
});
