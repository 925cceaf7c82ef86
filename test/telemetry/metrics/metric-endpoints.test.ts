// metrics/metric-endpoints.ts: where OTLP metrics go, derived from the trace
// endpoints (docs/metrics.md#export). Pure: settings in, settings out. The
// config-level behaviour (file and environment) is in
// test/runner-proxy/config/metrics-config.test.ts.
import t from 'tap';
import { metricEndpoints } from '../../../src/telemetry/metrics/metric-endpoints.js';
import type { EndpointSettings } from '../../../src/telemetry/export/settings.js';

const endpoint = (name: string, url: string, protocol?: 'grpc' | 'http/protobuf'): EndpointSettings =>
  ({ name, url, auth: { type: 'none' }, ...(protocol ? { protocol } : {}) }) as unknown as EndpointSettings;

t.test('metricEndpoints keeps everything but the URL: auth, TLS and headers are the trace endpoint’s', async (t) => {
  const e = {
    name: 'x',
    protocol: 'http/protobuf',
    url: 'https://c.example/v1/traces/',
    headers: { 'x-tenant': 'a' },
    tls: { caFile: '/ca.pem', insecureSkipVerify: false },
    auth: { type: 'none' },
  } as unknown as EndpointSettings;
  const [m] = metricEndpoints([e]).endpoints;
  t.equal(m!.url, 'https://c.example/v1/metrics');
  t.same({ ...m, url: e.url }, e);
});

t.test('gRPC keeps its URL; the environment endpoint uses the metrics variables; the rest is derived or skipped', async (t) => {
  const grpc = endpoint('g', 'http://127.0.0.1:4317/anything');
  const r = metricEndpoints([grpc]);
  t.equal(r.endpoints[0], grpc, 'gRPC: the same settings object, the method names the signal');
  t.same(r.skipped, []);

  const env = endpoint('env', 'http://127.0.0.1:4318/base/v1/traces', 'http/protobuf');
  t.equal(
    metricEndpoints([env], { envEndpointName: 'env', metricsEndpoint: 'http://127.0.0.1:4318/m' }).endpoints[0]!.url,
    'http://127.0.0.1:4318/m',
  );
  t.equal(
    metricEndpoints([env], { envEndpointName: 'env', genericEndpoint: 'http://127.0.0.1:4318/base' }).endpoints[0]!.url,
    'http://127.0.0.1:4318/base/v1/metrics',
  );
  t.equal(
    metricEndpoints([env], { envEndpointName: 'other', metricsEndpoint: 'http://127.0.0.1:4318/m' }).endpoints[0]!.url,
    'http://127.0.0.1:4318/base/v1/metrics',
    'the metrics variable applies only to the endpoint made from the environment',
  );
  t.match(metricEndpoints([env], { envEndpointName: 'env', genericEndpoint: 'nope' }).skipped, [
    { endpoint: 'env', reason: /OTEL_EXPORTER_OTLP_ENDPOINT does not parse/ },
  ]);

  const mixed = metricEndpoints([
    endpoint('a', 'https://a.example/x/v1/traces//', 'http/protobuf'),
    endpoint('b', 'https://b.example/x', 'http/protobuf'),
    grpc,
  ]);
  t.same(
    mixed.endpoints.map((e) => [e.name, e.url]),
    [
      ['a', 'https://a.example/x/v1/metrics'],
      ['g', 'http://127.0.0.1:4317/anything'],
    ],
  );
  t.match(mixed.skipped, [{ endpoint: 'b', reason: /does not end in \/v1\/traces/ }]);
});
