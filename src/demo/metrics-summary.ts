// The demo's closing metrics summary (docs/metrics.md#demo): queue-time and
// job-duration percentiles and the stage breakdown, computed from the metric
// points the collector received, never from the proxy's memory. A percentile
// is the upper bound of the histogram bucket it falls in ("p95 ≤ 10 s"): what
// the buckets can say without pretending to more resolution. Pure: received
// points in, figures and lines out.
import { CI_METRIC } from '../runner-proxy/job/ci-metrics.js';
import { CI } from '../telemetry/attributes.js';
import { distribution, quantileBound, type ReceivedPoint } from '../telemetry/metrics/received-metrics.js';
import type { Paint } from './narration.js';

export interface Percentiles {
  readonly count: number;
  /** Upper bounds of the buckets the 50th and 95th percentiles fall in, seconds (Infinity: past the last bound). */
  readonly p50: number;
  readonly p95: number;
  /** Sum of the observed values, seconds. */
  readonly sum: number;
}

export interface MetricsSummary {
  /** Export calls with metric points the collector accepted. */
  readonly exports: number;
  readonly queue?: Percentiles;
  readonly job?: Percentiles;
  /** Per runner build stage, by total time spent, longest first. */
  readonly stages: (Percentiles & { readonly stage: string })[];
}

function percentiles(points: readonly ReceivedPoint[]): Percentiles | undefined {
  const d = distribution(points);
  if (!d || d.count === 0) return undefined;
  return { count: d.count, p50: quantileBound(d, 0.5), p95: quantileBound(d, 0.95), sum: d.sum };
}

export function summarizeMetrics(points: readonly ReceivedPoint[], exports: number): MetricsSummary {
  const of = (name: string) => points.filter((p) => p.metric === name);
  const stagePoints = of(CI_METRIC.stageDuration);
  const names = [...new Set(stagePoints.map((p) => String(p.attributes[CI.stageName])))];
  const stages = names
    .map((stage) => {
      const p = percentiles(stagePoints.filter((x) => x.attributes[CI.stageName] === stage));
      return p && { stage, ...p };
    })
    .filter((s): s is Percentiles & { stage: string } => s !== undefined)
    .sort((a, b) => b.sum - a.sum || (a.stage < b.stage ? -1 : 1));
  const queue = percentiles(of(CI_METRIC.jobQueueDuration));
  const job = percentiles(of(CI_METRIC.jobDuration));
  return { exports, ...(queue ? { queue } : {}), ...(job ? { job } : {}), stages };
}

const bound = (v: number): string => (Number.isFinite(v) ? `≤ ${v}s` : '> last bucket');

export function metricsSummaryLines(s: MetricsSummary, paint: Paint): string[] {
  if (!s.job) return [paint('bad', 'metrics: the collector received no CI/CD metrics')];
  const lines = [
    `${paint('bold', 'metrics')} ${paint('dim', `(what the collector received: ${s.exports} OTLP export${s.exports === 1 ? '' : 's'}, percentiles from histogram buckets)`)}`,
  ];
  const row = (label: string, p: Percentiles): string =>
    `  ${label.padEnd(32)} p50 ${bound(p.p50).padEnd(8)} p95 ${bound(p.p95).padEnd(8)} ${String(p.count).padStart(3)} observed`;
  if (s.queue) lines.push(row('queue time', s.queue));
  lines.push(row('job duration', s.job));
  const total = s.stages.reduce((n, x) => n + x.sum, 0);
  if (s.stages.length > 0) lines.push(`  ${paint('dim', 'stages, by share of the time spent:')}`);
  for (const st of s.stages) {
    const share = total > 0 ? `${((st.sum / total) * 100).toFixed(0).padStart(3)}%` : '  -';
    lines.push(`${row(`  ${st.stage}`, st)}  ${share}`);
  }
  return lines;
}
