// env-endpoint.ts: the OTEL_EXPORTER_OTLP_* endpoint and protocol variables read
// the way the OpenTelemetry exporter specification defines them
// (docs/export.md#environment). Pure functions, called directly.
import t from 'tap';
import { appendSignalPath, appendTracesPath, endpointFromEnv, protocolFromEnv } from '../../../src/telemetry/export/env-endpoint.js';

t.test('protocol from the environment: traces-specific wins, unset is grpc, bad values name the variable', async (t) => {
  t.same(protocolFromEnv({}), { ok: true, protocol: 'grpc' });
  t.same(protocolFromEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }), {
    ok: true,
    protocol: 'http/protobuf',
    variable: 'OTEL_EXPORTER_OTLP_PROTOCOL',
  });
  t.same(protocolFromEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }), {
    ok: true,
    protocol: 'grpc',
    variable: 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
  });
  const bad = protocolFromEnv({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' });
  t.equal(bad.ok, false);
  if (!bad.ok) {
    t.equal(bad.variable, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL');
    t.match(bad.message, /grpc \| http\/protobuf.*http\/json is not supported/);
  }
});

t.test('endpoint from the environment and the /v1/traces rule', async (t) => {
  t.same(endpointFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: ' http://c:4318 ' }), {
    url: 'http://c:4318',
    variable: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    perSignal: false,
  });
  t.equal(endpointFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b/x' })?.perSignal, true);
  t.equal(endpointFromEnv({}), undefined);
  t.equal(endpointFromEnv({ GITLAB_OTEL_ENDPOINT: 'http://g' }, 'GITLAB_OTEL_ENDPOINT')?.variable, 'GITLAB_OTEL_ENDPOINT');
  // The OTLP exporter spec's own examples.
  t.equal(appendTracesPath('http://collector:4318'), 'http://collector:4318/v1/traces');
  t.equal(appendTracesPath('http://collector:4318/'), 'http://collector:4318/v1/traces');
  t.equal(appendTracesPath('https://collector:4318/mypath'), 'https://collector:4318/mypath/v1/traces');
  t.equal(appendTracesPath('https://collector:4318/mypath/'), 'https://collector:4318/mypath/v1/traces');
});

t.test('blank variables count as unset; the fallback is generic; the signal path keeps query and fragment off', async (t) => {
  t.same(endpointFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '  ', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://g:4318' }), {
    url: 'http://g:4318',
    variable: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    perSignal: false,
  });
  t.same(endpointFromEnv({ GITLAB_OTEL_ENDPOINT: 'http://f:4317' }, 'GITLAB_OTEL_ENDPOINT'), {
    url: 'http://f:4317',
    variable: 'GITLAB_OTEL_ENDPOINT',
    perSignal: false,
  });
  t.equal(endpointFromEnv({ GITLAB_OTEL_ENDPOINT: 'http://f:4317' }), undefined, 'the fallback only when asked for');
  t.same(protocolFromEnv({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: ' ', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }), {
    ok: true,
    protocol: 'http/protobuf',
    variable: 'OTEL_EXPORTER_OTLP_PROTOCOL',
  });
  const bad = protocolFromEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'udp' });
  t.equal(bad.ok, false);
  if (!bad.ok) t.notMatch(bad.message, /http\/json is not supported/, 'the http/json hint only for http/json');
  t.equal(appendSignalPath('http://c:4318/base?x=1#f', 'v1/metrics'), 'http://c:4318/base/v1/metrics');
  t.throws(() => appendSignalPath('not a url', 'v1/metrics'));
});
