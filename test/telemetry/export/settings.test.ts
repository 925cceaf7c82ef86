// export/settings.ts: a GitLab payload endpoint (`features.tracing.otel_endpoints[]`)
// turned into EndpointSettings — schemes, ports, auth, the egress policy and
// defaults (docs/export.md#payload-endpoints) — and endpointKey, the identity
// that decides which jobs share a queue and a spool directory. Pure functions.
import t from 'tap';
import {
  DEFAULT_QUEUE,
  DEFAULT_RETRY,
  DEFAULT_TIMEOUT_MS,
  endpointFromPayload,
  endpointKey,
} from '../../../src/telemetry/export/settings.js';

t.test('payload endpoints become endpoint settings', async (t) => {
  const r = endpointFromPayload({
    url: 'grpcs://otel.gitlab.net',
    auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'aud' } },
  });
  t.ok(r.ok);
  if (r.ok)
    t.match(r.endpoint, {
      url: 'https://otel.gitlab.net:4317',
      auth: { type: 'gcp_workload_identity', audience: 'aud' },
      tls: { insecureSkipVerify: false },
    });
  // http(s):// payload endpoints are OTLP/HTTP, the path used as is (docs/export.md#payload-endpoints); other schemes are refused.
  t.match(endpointFromPayload({ url: 'https://otel.example/v1/traces' }), {
    ok: true,
    endpoint: { protocol: 'http/protobuf', url: 'https://otel.example/v1/traces' },
  });
  t.match(endpointFromPayload({ url: 'ftp://otel.example/v1/traces' }), { ok: false, error: { code: 'UNSUPPORTED_ENDPOINT_SCHEME' } });
  t.match(endpointFromPayload({ url: 'grpc://x:1', auth: { type: 'basic' } }), { ok: false, error: { code: 'UNSUPPORTED_AUTH_TYPE' } });
  t.match(endpointFromPayload({ url: 'not a url' }), { ok: false, error: { code: 'INVALID_ENDPOINT_URL' } });
});

t.test('payload endpoints: http(s) are OTLP/HTTP with the path as is, grpc(s) are OTLP/gRPC', async (t) => {
  const https = endpointFromPayload({ url: 'https://otel-collector.gitlab.net/v1/traces?x=1' });
  t.ok(https.ok);
  if (https.ok) {
    t.match(https.endpoint, {
      protocol: 'http/protobuf',
      url: 'https://otel-collector.gitlab.net/v1/traces',
      tls: { insecureSkipVerify: false },
    });
    t.equal(https.endpoint.name, 'payload:otel-collector.gitlab.net/v1/traces');
  }
  const plain = endpointFromPayload({ url: 'http://collector.example.com:4318/custom/path' });
  t.ok(plain.ok);
  if (plain.ok) {
    t.match(plain.endpoint, { protocol: 'http/protobuf', url: 'http://collector.example.com:4318/custom/path' });
    t.notOk(plain.endpoint.tls);
  }
  const grpcs = endpointFromPayload({
    url: 'grpcs://collector.example.com/path-ignored',
    auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'aud' } },
  });
  t.ok(grpcs.ok);
  if (grpcs.ok) {
    t.equal(grpcs.endpoint.url, 'https://collector.example.com:4317');
    t.notOk('protocol' in grpcs.endpoint);
    t.match(grpcs.endpoint.auth, { type: 'gcp_workload_identity', audience: 'aud' });
  }
  const gcpHttp = endpointFromPayload({
    url: 'https://collector.example.com/v1/traces',
    auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'aud' } },
  });
  t.ok(gcpHttp.ok && gcpHttp.endpoint.auth.type === 'gcp_workload_identity', 'GCP auth on OTLP/HTTP too');
  const ftp = endpointFromPayload({ url: 'ftp://collector.example.com' });
  t.ok(!ftp.ok && ftp.error.code === 'UNSUPPORTED_ENDPOINT_SCHEME');
  const creds = endpointFromPayload({ url: 'https://user:pw@collector.example.com/v1/traces' });
  t.ok(!creds.ok && creds.error.code === 'INVALID_ENDPOINT_URL');
});

t.test('endpoint keys: gRPC keys are what they were (spool directories survive the upgrade), OTLP/HTTP differs', async (t) => {
  const made = endpointFromPayload({ url: 'grpc://collector.example.com:4317' });
  if (!made.ok) throw made.error;
  const e = made.endpoint;
  t.equal(endpointKey(e), JSON.stringify([e.url, e.auth, e.tls ?? null, e.headers]));
  t.not(endpointKey({ ...e, protocol: 'http/protobuf' }), endpointKey(e));
});

t.test('ports: grpc(s) without a port is 4317, a written port (443 included) is kept', async (t) => {
  t.match(endpointFromPayload({ url: 'grpcs://otel.example.com:443' }), {
    ok: true,
    endpoint: { url: 'https://otel.example.com:443', name: 'payload:otel.example.com:443' },
  });
  t.match(endpointFromPayload({ url: 'grpc://otel.example.com' }), { ok: true, endpoint: { url: 'http://otel.example.com:4317' } });
  t.match(endpointFromPayload({ url: 'https://otel.example.com:443/v1/traces' }), {
    ok: true,
    endpoint: { url: 'https://otel.example.com/v1/traces', name: 'payload:otel.example.com/v1/traces' },
  });
});

t.test('defaults: gzip, the given queue/retry/timeout/metadata URL, else the package defaults', async (t) => {
  const plain = endpointFromPayload({ url: 'grpcs://otel.example.com' });
  t.match(plain, {
    ok: true,
    endpoint: { compression: 'gzip', timeoutMs: DEFAULT_TIMEOUT_MS, queue: DEFAULT_QUEUE, retry: DEFAULT_RETRY, headers: {} },
  });
  const retry = { initialBackoffMs: 5, maxBackoffMs: 50 };
  const given = endpointFromPayload(
    { url: 'grpcs://otel.example.com', auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'aud' } } },
    { retry, timeoutMs: 1234, metadataUrl: 'http://127.0.0.1:9/identity' },
  );
  t.match(given, { ok: true, endpoint: { retry, timeoutMs: 1234, auth: { metadataUrl: 'http://127.0.0.1:9/identity' } } });
  t.match(endpointFromPayload({ url: 'grpcs://x.example', auth: { type: 'http_bearer_gcp_oidc' } }), {
    ok: false,
    error: { code: 'UNSUPPORTED_AUTH_TYPE' },
  });
});

t.test('the egress policy decides first: a host outside allowed_hosts is refused with its reason', async (t) => {
  const egress = { allowedHosts: [{ host: 'otel.example.com', port: 4317 }] };
  t.match(endpointFromPayload({ url: 'grpcs://otel.example.com' }, { egress }), { ok: true, endpoint: { egress: { allowed: true } } });
  const refused = endpointFromPayload({ url: 'grpcs://evil.example.com' }, { egress });
  t.match(refused, {
    ok: false,
    error: { code: 'EGRESS_REFUSED', message: /grpcs:\/\/evil\.example\.com:4317 refused/ },
    refusal: 'host_not_allowed',
  });
  t.match(
    endpointFromPayload({ url: 'grpcs://otel.example.com:4318' }, { egress }),
    { ok: false, refusal: 'host_not_allowed' },
    'the port is part of the pattern',
  );
});
