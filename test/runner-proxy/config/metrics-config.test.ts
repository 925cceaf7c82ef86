// The `metrics:` section and `telemetry.queue_span` (docs/metrics.md#configuration):
// defaults, values, errors with their key paths, and where metrics go for each
// way the trace endpoint can be given (file, generic variable, per-signal variables).
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../../../src/runner-proxy/config/load.js';
import { ConfigError } from '../../../src/runner-proxy/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-metrics-config-'));
let n = 0;
function load(yaml: string, env: Record<string, string> = {}) {
  const p = join(dir, `c${n++}.yml`);
  writeFileSync(p, `upstream: { url: https://gitlab.example.com }\n${yaml}`);
  return loadConfig(p, env).config;
}
const fromEnv = (env: Record<string, string>) => loadConfig(undefined, env, { upstream: 'https://gitlab.example.com' });
function problems(yaml: string): string[] {
  try {
    load(yaml);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

t.test('defaults: on, to the trace endpoints, no opt-in attributes, cap 100, no queue span', async (t) => {
  const c = load('endpoints: [{ name: c, url: "https://collector.example:4317" }]\n');
  t.match(c.metrics, {
    enabled: true,
    projectAttribute: false,
    pipelineNameAttribute: false,
    maxAttributeValues: 100,
    skippedEndpoints: [],
  });
  t.notOk('concurrent' in c.metrics);
  t.same(
    c.metrics.endpoints.map((e) => [e.name, e.url]),
    [['c', 'https://collector.example:4317']],
    'gRPC: the same channel (the method names the signal)',
  );
  t.equal(c.telemetry.queueSpan, false);
});

t.test('values', async (t) => {
  const c = load(`
endpoints: [{ name: c, url: "https://collector.example:4317" }]
telemetry: { queue_span: true }
metrics: { project_attribute: true, pipeline_name_attribute: true, max_attribute_values: 20, concurrent: 8 }
`);
  t.match(c.metrics, { projectAttribute: true, pipelineNameAttribute: true, maxAttributeValues: 20, concurrent: 8 });
  t.equal(c.telemetry.queueSpan, true);
  t.same(load('endpoints: [{ name: c, url: "https://c.example:4317" }]\nmetrics: { endpoints: none }\n').metrics.endpoints, []);
  t.same(load('endpoints: [{ name: c, url: "https://c.example:4317" }]\nmetrics: { enabled: false }\n').metrics.endpoints, []);
});

t.test('errors name their key path', async (t) => {
  t.same(problems('metrics: { enabled: "yes" }\n'), ['metrics.enabled: expected true or false, got string "yes"']);
  t.match(problems('metrics: { endpoints: all }\n'), [/^metrics\.endpoints: /]);
  t.match(problems('metrics: { max_attribute_values: 0 }\n'), [/^metrics\.max_attribute_values: expected a whole number from 1/]);
  t.match(problems('metrics: { concurrent: -1 }\n'), [/^metrics\.concurrent: /]);
  t.match(problems('metrics: { colour: blue }\n'), [/^metrics\.colour: unknown key/]);
  t.match(problems('metrics: 3\n'), [/^metrics: expected a mapping/]);
  t.match(problems('telemetry: { queue_span: 1 }\n'), [/^telemetry\.queue_span: expected true or false/]);
});

t.test('OTEL_METRIC_EXPORT_* and the temporality preference: read into the config, a bad one is a config error naming it', async (t) => {
  t.same(fromEnv({}).config.metrics.export, { intervalMs: 60_000, timeoutMs: 30_000, temporality: 'cumulative' });
  t.same(
    fromEnv({
      OTEL_METRIC_EXPORT_INTERVAL: '5000',
      OTEL_METRIC_EXPORT_TIMEOUT: '2000',
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'Delta',
    }).config.metrics.export,
    { intervalMs: 5000, timeoutMs: 2000, temporality: 'delta' },
  );
  let err: unknown;
  try {
    fromEnv({ OTEL_METRIC_EXPORT_INTERVAL: '10s' });
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ConfigError);
  t.match((err as ConfigError).problems, [{ path: 'OTEL_METRIC_EXPORT_INTERVAL', message: /positive whole number of milliseconds/ }]);
});

t.test('metrics.endpoints as a list: collectors for metrics alone, URLs as given, key paths in errors', async (t) => {
  const c = load(`
endpoints: [{ name: traces, url: "https://t.example:4317" }]
metrics:
  endpoints:
    - { name: m, protocol: http/protobuf, url: "http://127.0.0.1:4318/v1/metrics" }
`);
  t.same(
    c.metrics.endpoints.map((e) => [e.name, e.protocol, e.url]),
    [['m', 'http/protobuf', 'http://127.0.0.1:4318/v1/metrics']],
  );
  t.same(
    c.endpoints.map((e) => e.name),
    ['traces'],
    'the trace endpoints are untouched',
  );
  t.match(problems('metrics: { endpoints: [{ name: m }] }\n'), ['metrics.endpoints[0].url: required']);
});

t.test('OTLP/HTTP: the metrics URL is derived the way the trace URL was', async (t) => {
  const file = load(`
endpoints:
  - { name: full, protocol: http/protobuf, url: "https://tempo.example/otlp/v1/traces" }
  - { name: root, protocol: http/protobuf, url: "https://other.example:4318/" }
`);
  t.same(
    file.metrics.endpoints.map((e) => [e.name, e.url]),
    [['full', 'https://tempo.example/otlp/v1/metrics']],
    'a configured URL ending in /v1/traces: the same URL ending in /v1/metrics',
  );
  t.match(file.metrics.skippedEndpoints, [{ endpoint: 'root', reason: /does not end in \/v1\/traces/ }], 'no guess for any other path');

  const generic = fromEnv({
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/base',
  }).config;
  t.equal(generic.endpoints[0]!.url, 'http://127.0.0.1:4318/base/v1/traces');
  t.equal(generic.metrics.endpoints[0]!.url, 'http://127.0.0.1:4318/base/v1/metrics', 'generic variable: v1/metrics appended');

  const perSignal = fromEnv({
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/traces-here',
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://127.0.0.1:4318/metrics-here',
  }).config;
  t.equal(perSignal.metrics.endpoints[0]!.url, 'http://127.0.0.1:4318/metrics-here', 'the metrics-specific variable, as is');

  const tracesAndGeneric = fromEnv({
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/traces-here',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
  }).config;
  t.equal(
    tracesAndGeneric.metrics.endpoints[0]!.url,
    'http://127.0.0.1:4318/v1/metrics',
    'the generic variable when only traces has its own',
  );

  const onlyTraces = fromEnv({
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/traces-here',
  }).config;
  t.same(onlyTraces.metrics.endpoints, [], 'nothing to derive from a per-signal traces URL');
  t.equal(onlyTraces.metrics.skippedEndpoints.length, 1);
});

t.test('the shipped example states the metrics section and it loads', async (t) => {
  const text = readFileSync(new URL('../../../runner-config/gitlab-otel.yml', import.meta.url), 'utf8');
  const doc = parse(text) as { metrics?: Record<string, unknown>; telemetry?: Record<string, unknown> };
  t.match(doc.metrics, { enabled: true, endpoints: 'same-as-traces', project_attribute: false, max_attribute_values: 100 });
  t.equal(doc.telemetry?.queue_span, false);
});
