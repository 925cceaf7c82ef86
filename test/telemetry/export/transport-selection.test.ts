// Which transport an endpoint uses and where it posts: the pure rules (no I/O)
// for `protocol:` in the config and the environment, and the OTLP/HTTP retry
// classification and Retry-After. The variables themselves are in
// env-endpoint.test.ts, payload endpoint schemes in settings.test.ts.
import t from 'tap';
import { loadConfig } from '../../../src/runner-proxy/config/load.js';
import { ConfigError } from '../../../src/runner-proxy/config/schema.js';
import type { EndpointSettings } from '../../../src/telemetry/export/settings.js';
import { classifyHttpStatus, decideFailure, parseRetryAfter } from '../../../src/telemetry/export/retry-policy.js';
import { planJobExport } from '../../../src/in-job/job-export.js';

const UPSTREAM = { upstream: 'https://gitlab.example.com' };

function envEndpoints(env: Record<string, string>): EndpointSettings[] {
  return loadConfig(undefined, env, UPSTREAM).config.endpoints;
}

function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

t.test('the proxy config: env endpoint with http/protobuf, per-signal as is, gRPC unchanged', async (t) => {
  const generic = envEndpoints({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/base', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' });
  t.match(generic, [{ protocol: 'http/protobuf', url: 'http://127.0.0.1:4318/base/v1/traces' }]);
  const perSignal = envEndpoints({
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://otlp.example.com/api/traces',
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
  });
  t.match(perSignal, [{ protocol: 'http/protobuf', url: 'https://otlp.example.com/api/traces' }]);
  const grpc = envEndpoints({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317' });
  t.equal(grpc[0]!.url, 'http://127.0.0.1:4317');
  t.notOk('protocol' in grpc[0]!, 'no protocol field: settings identical to before OTLP/HTTP existed');
  const err = configError(() => envEndpoints({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'udp' }));
  t.match(err.problems, [{ path: 'OTEL_EXPORTER_OTLP_PROTOCOL', message: /expected one of grpc \| http\/protobuf/ }]);
});

t.test('the proxy config: protocol: per endpoint; no protocol stays gRPC; a bad value names its key path', async (t) => {
  const { validateConfig } = await import('../../../src/runner-proxy/config/schema.js');
  const { envDefaults } = await import('../../../src/runner-proxy/config/load.js');
  const env = envDefaults({}).defaults;
  const doc = {
    upstream: { url: 'https://gitlab.example.com' },
    endpoints: [
      { name: 'old', url: 'https://collector.example.com:4317/ignored' },
      { name: 'http', protocol: 'http/protobuf', url: 'https://collector.example.com/v1/traces' },
      { name: 'grpc', protocol: 'grpc', url: 'http://127.0.0.1:4317' },
    ],
  };
  const eps = validateConfig(doc, env).endpoints;
  t.equal(eps[0]!.url, 'https://collector.example.com:4317', 'gRPC: host and port only, as before');
  t.notOk('protocol' in eps[0]!);
  t.match(eps[1], { protocol: 'http/protobuf', url: 'https://collector.example.com/v1/traces' });
  t.notOk('protocol' in eps[2]!, 'an explicit grpc is the default');
  const err = configError(() =>
    validateConfig({ ...doc, endpoints: [{ name: 'x', protocol: 'http', url: 'https://c.example.com/v1/traces' }] }, env),
  );
  t.match(err.problems, [{ path: 'endpoints[0].protocol', message: /expected one of grpc \| http\/protobuf, got "http"/ }]);
});

t.test('OTLP/HTTP statuses: 429/502/503/504 retryable, 401 reauthenticates once, the rest are permanent', async (t) => {
  for (const s of [429, 502, 503, 504]) t.equal(classifyHttpStatus(s), 'retryable', String(s));
  for (const s of [400, 403, 404, 405, 413, 415, 500, 501, 301]) t.equal(classifyHttpStatus(s), 'permanent', String(s));
  t.equal(classifyHttpStatus(401), 'unauthenticated');
  t.same(decideFailure('retryable', 1500, false), { action: 'retry', minDelayMs: 1500 });
  t.same(decideFailure('retryable', undefined, false), { action: 'retry', minDelayMs: 0 });
  t.same(decideFailure('unauthenticated', undefined, false), { action: 'reauthenticate' });
  t.same(decideFailure('unauthenticated', undefined, true), { action: 'drop' });
  t.same(decideFailure('permanent', 5000, false), { action: 'drop' });
});

t.test('Retry-After: delay-seconds or an HTTP date', async (t) => {
  const now = Date.parse('Sun, 06 Nov 1994 08:49:37 GMT');
  t.equal(parseRetryAfter('120', now), 120_000);
  t.equal(parseRetryAfter(' 0 ', now), 0);
  t.equal(parseRetryAfter('Sun, 06 Nov 1994 08:49:47 GMT', now), 10_000);
  t.equal(parseRetryAfter('Sun, 06 Nov 1994 08:49:07 GMT', now), 0, 'a date in the past: no wait');
  t.equal(parseRetryAfter(undefined, now), undefined);
  t.equal(parseRetryAfter('-5', now), undefined);
  t.equal(parseRetryAfter('1.5', now), undefined);
  t.equal(parseRetryAfter('soon', now), undefined);
});

t.test('in-job plan: protocol from the environment, bad values switch export off with the variable named', async (t) => {
  const http = planJobExport({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector.example.com:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' });
  t.match(http, { kind: 'on', endpoint: { protocol: 'http/protobuf', url: 'https://collector.example.com:4318/v1/traces' } });
  const perSignal = planJobExport({
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/custom',
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
  });
  t.match(perSignal, { kind: 'on', endpoint: { url: 'http://127.0.0.1:4318/custom' } });
  const grpc = planJobExport({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317' });
  t.match(grpc, { kind: 'on', endpoint: { url: 'http://127.0.0.1:4317' } });
  t.ok(grpc.kind === 'on' && !('protocol' in grpc.endpoint));
  const bad = planJobExport({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' });
  t.match(bad, { kind: 'off', reason: /^OTEL_EXPORTER_OTLP_PROTOCOL: expected one of/ });
});
