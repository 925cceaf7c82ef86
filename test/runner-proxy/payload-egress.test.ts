// payload-egress: which of GitLab's per-job collectors the proxy serves under the
// egress policy, and how refusals are counted and logged (docs/security.md#payload-endpoints).
import t from 'tap';
import { Registry } from 'prom-client';
import type { LogFields, LogLevel } from '../../src/log.js';
import { EgressRefusedError, reportEgressRefusal } from '../../src/telemetry/export/egress-policy.js';
import { payloadEgress } from '../../src/runner-proxy/payload-egress.js';

async function refusedCounts(registry: Registry): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric('gitlab_otel_egress_refused_total')!.get();
  return Object.fromEntries(metric.values.map((v) => [`${v.labels.stage}/${v.labels.reason}`, v.value]));
}

t.test('refusals at the payload and at connect time are counted, logged once per host', async (t) => {
  const registry = new Registry();
  const logs: { level: LogLevel; msg: string; fields?: LogFields }[] = [];
  const egress = payloadEgress({ egress: {} }, registry, (level, msg, fields) => logs.push({ level, msg, fields }));
  t.teardown(() => egress.close());

  t.equal(egress.servesEndpoint({ url: 'https://collector.example.com:4318' }), undefined, 'a public host is served');
  t.equal(egress.servesEndpoint({ url: 'https://127.0.0.1:4318/v1/traces' }), 'egress_policy', 'loopback is left to the runner');
  t.equal(egress.servesEndpoint({ url: 'https://127.0.0.1:4318/other' }), 'egress_policy');
  t.equal(egress.servesEndpoint({ url: 'https://169.254.169.254' }), 'egress_policy');
  t.equal(egress.servesEndpoint({ url: 'ftp://collector.example.com' }), 'unsupported_scheme', 'not an egress refusal');
  reportEgressRefusal(new EgressRefusedError('collector.example.com', 'private'));

  t.same(await refusedCounts(registry), { 'payload/loopback': 2, 'payload/metadata': 1, 'connect/private': 1 });
  t.same(
    logs.map((l) => [l.level, l.fields?.endpoint, l.fields?.reason, l.fields?.stage]),
    [
      ['warn', 'https://127.0.0.1:4318', 'loopback', 'payload'],
      ['warn', 'https://169.254.169.254', 'metadata', 'payload'],
      ['warn', 'collector.example.com', 'private', 'connect'],
    ],
    'one line per host, without the path',
  );

  egress.close();
  reportEgressRefusal(new EgressRefusedError('other.example.com', 'private'));
  t.equal((await refusedCounts(registry))['connect/private'], 1, 'closed: connect-time refusals are no longer heard');
});

t.test('an allow-list refuses other hosts', async (t) => {
  const registry = new Registry();
  const egress = payloadEgress({ egress: { allowedHosts: [{ host: 'otel.example.com', port: 443 }] } }, registry, () => {});
  t.teardown(() => egress.close());
  t.equal(egress.servesEndpoint({ url: 'https://otel.example.com' }), undefined);
  t.equal(egress.servesEndpoint({ url: 'https://evil.example.com' }), 'egress_policy');
  t.same(await refusedCounts(registry), { 'payload/host_not_allowed': 1 });
});
