// load: the YAML file, the OTEL_* environment beneath it and command-line overrides above it.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envDefaults, loadConfig, readYaml } from '../../../src/runner-proxy/config/load.js';
import { ConfigError } from '../../../src/runner-proxy/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-load-'));
t.teardown(() => import('node:fs').then((fs) => fs.rmSync(dir, { recursive: true, force: true })));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.code;
    throw err;
  }
  return undefined;
}

t.test('reading the YAML file', async (t) => {
  const check = (yaml: string) => problems(() => loadConfig(file('x.yml', yaml), {}));
  t.match(check('- a\n- b\n'), [/must be a YAML mapping/]);
  t.match(check('upstream: {url: https://g}\nupstream: {url: https://h}\n'), [/line 2.*unique/]);
  t.match(check('upstream: [\n'), [/line/]);
  t.match(
    problems(() => loadConfig(join(dir, 'missing.yml'), {})),
    [/cannot read: ENOENT/],
  );
  t.equal(
    code(() => readYaml(join(dir, 'missing.yml'))),
    'CONFIG_UNREADABLE',
  );
  t.equal(
    code(() => readYaml(file('syntax.yml', 'a: [\n'))),
    'CONFIG_SYNTAX',
  );
  t.equal(
    code(() => loadConfig(file('list.yml', '- a\n'), {})),
    'CONFIG_INVALID',
  );
  t.same(readYaml(file('ok.yml', 'a: {b: 1}\n')), { a: { b: 1 } });
});

t.test('flags override the file', async (t) => {
  const f = file('flags.yml', 'upstream: {url: https://file.example}\nlisten: 127.0.0.1:7000\n');
  t.equal(loadConfig(f, {}).config.upstream.url.origin, 'https://file.example');
  const { config } = loadConfig(f, {}, { upstream: 'https://flag.example', listen: '127.0.0.1:7001' });
  t.equal(config.upstream.url.origin, 'https://flag.example', '--upstream replaces the file URL');
  t.same(config.listen, { host: '127.0.0.1', port: 7001 });
});

t.test('envDefaults reads the standard OTEL_* variables', async (t) => {
  const { defaults, warnings } = envDefaults({
    OTEL_EXPORTER_OTLP_ENDPOINT: ' http://127.0.0.1:4318 ',
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://127.0.0.1:9090/v1/metrics',
    OTEL_SERVICE_NAME: '',
  });
  t.equal(defaults.genericEndpoint, 'http://127.0.0.1:4318', 'trimmed');
  t.equal(defaults.metricsEndpoint, 'http://127.0.0.1:9090/v1/metrics');
  t.equal(defaults.serviceName, undefined, 'an empty service name is no service name');
  t.same(warnings, []);
  t.match(envDefaults({ OTEL_EXPORTER_OTLP_HEADERS: 'a=b,nope' }).warnings, [/entries 1/]);
});

t.test('environment beneath, flags above', async (t) => {
  const { config, warnings } = loadConfig(
    undefined,
    {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=ci,broken',
      OTEL_SERVICE_NAME: 'runners-eu',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
    },
    { upstream: 'https://gitlab.example.com', listen: '0.0.0.0:8081', adminListen: '127.0.0.1:9999' },
  );
  t.match(config.endpoints, [{ name: 'default', url: 'http://127.0.0.1:4317', headers: { 'x-tenant': 'ci' } }]);
  t.equal(config.telemetry.serviceName, 'runners-eu');
  t.same(config.telemetry.resourceAttributes, { 'deployment.environment.name': 'prod' });
  t.match(config.sampling, { sampler: 'parentbased_traceidratio', ratio: 0.25 });
  t.same(config.listen, { host: '0.0.0.0', port: 8081 });
  t.same(config.admin, { host: '127.0.0.1', port: 9999 });
  t.match(warnings, [/OTEL_EXPORTER_OTLP_HEADERS: entries 1/]);
  const traces = loadConfig(
    undefined,
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:2' },
    { upstream: 'https://g' },
  );
  t.equal(traces.config.endpoints[0]!.url, 'http://b:2', 'the traces-specific variable wins');
});
