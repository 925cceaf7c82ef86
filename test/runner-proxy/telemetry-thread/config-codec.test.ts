import t from 'tap';
import { validateConfig } from '../../../src/runner-proxy/config/schema.js';
import { envDefaults } from '../../../src/runner-proxy/config/load.js';
import { decodeConfig, encodeConfig } from '../../../src/runner-proxy/telemetry-thread/config-codec.js';

// A configuration using every kind of value ProxyConfig holds: URL, nested settings, lists, maps, optional files.
const doc = {
  listen: '127.0.0.1:0',
  admin: '127.0.0.1:9465',
  upstream: { url: 'https://gitlab.example.com/prefix', headers_timeout: '2m' },
  limits: { max_buffered_bytes: '64MiB' },
  telemetry: {
    thread: 'worker',
    negotiation: 'payload-or-variable',
    payload_endpoints: { allowed_hosts: ['otel.example.com:4317', '*.example.org:443'], allowed_audiences: ['aud'] },
    resource_attributes: { 'deployment.environment': 'lab' },
    trace_context: { inject: true, otlp_endpoint: 'https://otel.example.com:4318' },
  },
  endpoints: [
    {
      name: 'a',
      url: 'https://otel.example.com:4317',
      headers: { 'x-tenant': 'ci' },
      tls: { ca_file: '/etc/ca.pem', insecure_skip_verify: false },
      queue: { batch_delay: '20ms' },
    },
    { name: 'b', url: 'https://otel.example.net/v1/traces', protocol: 'http/protobuf' },
  ],
  metrics: { concurrent: 4, project_attribute: true },
  spool: { dir: '/var/spool/gitlab-otel' },
  sampling: { sampler: 'traceidratio', ratio: 0.25 },
  shutdown: { grace: '5s', flush_timeout: '2s' },
  log_level: 'debug',
};

t.test('the configuration survives the trip to the worker (structured clone) exactly', async (t) => {
  const config = validateConfig(doc, envDefaults({}).defaults);
  const arrived = decodeConfig(structuredClone(encodeConfig(config)));
  t.same(arrived, config, 'equal after encode → clone → decode');
  t.ok(arrived.upstream.url instanceof URL, 'upstream.url is a URL again');
  t.equal(arrived.upstream.url.href, 'https://gitlab.example.com/prefix');
});

t.test('why the codec exists: structured clone turns a URL into an empty object without complaint', async (t) => {
  const config = validateConfig(doc, envDefaults({}).defaults);
  const raw = structuredClone(config) as unknown as { upstream: { url: unknown } };
  t.notOk(raw.upstream.url instanceof URL);
  t.same(raw.upstream.url, {});
});
