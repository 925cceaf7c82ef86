// The Prometheus names the CI/CD metrics really have: CiMetrics fed one
// finished job (stages, a cache hit, a system failure) and an artifact upload, served through the
// product's PrometheusTextReader, parsed with a real text-format parser.
// Dashboards and alerts are checked against this set, so a rename breaks the build.
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { CI, CICD } from '../../src/telemetry/attributes.js';
import { PrometheusTextReader } from '../../src/telemetry/metrics/prometheus-reader.js';
import { SpanKind, SpanStatusCode, type SpanRecord } from '../../src/telemetry/spans.js';
import { CiMetrics } from '../../src/runner-proxy/job/ci-metrics.js';
import { parseExposition } from './prometheus-text.js';

export interface ServedMetrics {
  /** Family names as served, plus the _bucket/_sum/_count series of histograms. */
  readonly series: ReadonlySet<string>;
  /** Label names per series name. */
  readonly labels: ReadonlyMap<string, ReadonlySet<string>>;
}

const span = (name: string, spanId: string, attributes: SpanRecord['attributes'], parentSpanId?: string): SpanRecord => ({
  traceId: '1'.repeat(32),
  spanId,
  parentSpanId,
  name,
  kind: SpanKind.INTERNAL,
  startTimeUnixNano: 1_000_000_000n,
  endTimeUnixNano: 5_000_000_000n,
  attributes,
  status: { code: SpanStatusCode.UNSET },
});

export async function servedCiMetrics(): Promise<ServedMetrics> {
  const reader = new PrometheusTextReader();
  const provider = new MeterProvider({ readers: [reader] });
  const metrics = new CiMetrics({
    meter: provider.getMeter('gitlab-otel'),
    projectAttribute: true,
    pipelineNameAttribute: true,
    maxAttributeValues: 0,
    concurrent: 4,
    activeJobs: () => 1,
  });
  const job = span('job_execution', 'a'.repeat(16), {
    [CI.jobStatus]: 'failed',
    [CICD.taskRunResult]: 'failure',
    [CI.jobFailureReason]: 'runner_system_failure',
    [CI.runnerExecutor]: 'docker',
    [CI.projectPath]: 'group/app',
    [CI.jobTimeInQueue]: 3,
  });
  metrics.observe([
    span(
      'restore_cache',
      'b'.repeat(16),
      { [CI.stageName]: 'restore_cache', [CI.stageStatus]: 'success', [CI.cacheHit]: true },
      job.spanId,
    ),
    job,
  ]);
  metrics.artifactTransfer({ direction: 'upload', bytes: 1024, status: 201, complete: true, executor: 'docker' });
  const exposition = parseExposition(await reader.text());
  await provider.shutdown();
  const series = new Set<string>();
  const labels = new Map<string, Set<string>>();
  for (const s of exposition.series) {
    series.add(s.name);
    const keys = labels.get(s.name) ?? new Set<string>();
    for (const k of Object.keys(s.labels)) keys.add(k);
    labels.set(s.name, keys);
  }
  return { series, labels };
}
