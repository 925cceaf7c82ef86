// The composition of the CI/CD metrics (docs/metrics.md#export): off means
// nothing is built; endpoints that get no metrics and weakened transport
// security are said once at start.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/runner-proxy/config/load.js';
import { startCiMetrics } from '../../src/runner-proxy/ci-metrics-export.js';
import { memoryLogger } from '../support/memory-logger.js';
import { parseExposition } from '../support/prometheus-text.js';

const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-ci-metrics-export-'));
function config(yaml: string) {
  const p = join(dir, `c${Math.random().toString(16).slice(2)}.yml`);
  writeFileSync(p, `upstream: { url: https://gitlab.example.com }\n${yaml}`);
  return loadConfig(p, {}).config;
}

t.test('metrics.enabled: false builds nothing', async (t) => {
  const c = config('metrics: { enabled: false }\n');
  t.equal(
    startCiMetrics({
      config: c.metrics,
      resourceAttributes: {},
      prometheus: true,
      activeJobs: () => 0,
      registry: new Registry(),
      log: memoryLogger(),
    }),
    undefined,
  );
});

t.test('skipped endpoints and weakened TLS are logged at start; the Prometheus text is served', async (t) => {
  const c = config(`
endpoints:
  - { name: odd, protocol: http/protobuf, url: "https://c.example/ingest" }
  - { name: lax, url: "https://c.example:4317", tls: { insecure_skip_verify: true } }
`);
  const log = memoryLogger();
  const m = startCiMetrics({
    config: c.metrics,
    resourceAttributes: {},
    prometheus: true,
    activeJobs: () => 2,
    registry: new Registry(),
    log,
  });
  t.teardown(() => m?.shutdown(100));
  t.match(log.lines, [
    { level: 'warn', msg: /^no metrics to this endpoint: the OTLP\/HTTP URL does not end in \/v1\/traces/, fields: { endpoint: 'odd' } },
    { level: 'warn', msg: /TLS verification of this metric collector's certificate is disabled/, fields: { endpoint: 'lax' } },
    { level: 'info', msg: 'CI/CD metrics on', fields: { endpoints: 'lax', interval_ms: 60_000, temporality: 'cumulative' } },
  ]);
  const served = parseExposition(await m!.prometheusText()).series.find((x) => x.name === 'ci_runner_jobs_active');
  t.equal(served?.value, 2, 'the pull reader serves the instruments');
});
