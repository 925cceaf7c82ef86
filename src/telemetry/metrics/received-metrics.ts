// The metrics side of the loopback OTLP receivers (receiver.ts): decodes an
// ExportMetricsServiceRequest into flat data points and keeps them, for the
// tests and for the demo's summary, which is computed from what the collector
// received (docs/metrics.md#demo). Also the pure arithmetic a reader of
// histograms needs: merging cumulative or delta points into one distribution
// and reading a percentile from its buckets, the way Prometheus'
// histogram_quantile interpolates inside a bucket.
import { otlpTypes } from '../otlp-proto.js';

type AttributeValue = string | number | boolean | null;

export type MetricKind = 'gauge' | 'sum' | 'histogram';

/** OTLP AggregationTemporality: 1 delta, 2 cumulative (0 for gauges). */
export const TEMPORALITY = { unspecified: 0, delta: 1, cumulative: 2 } as const;

export interface ReceivedPoint {
  readonly metric: string;
  readonly unit: string;
  readonly kind: MetricKind;
  readonly temporality: number;
  readonly attributes: Record<string, AttributeValue>;
  readonly resource: Record<string, AttributeValue>;
  readonly startTimeUnixNano: bigint;
  readonly timeUnixNano: bigint;
  /** Gauge and sum points. */
  readonly value?: number;
  /** Histogram points. */
  readonly count?: number;
  readonly sum?: number;
  readonly bucketCounts?: number[];
  readonly explicitBounds?: number[];
}

interface RawKeyValue {
  key: string;
  value?: { stringValue?: string; boolValue?: boolean; intValue?: string; doubleValue?: number };
}
interface RawNumberPoint {
  attributes?: RawKeyValue[];
  startTimeUnixNano?: string;
  timeUnixNano?: string;
  asDouble?: number;
  asInt?: string;
}
interface RawHistogramPoint {
  attributes?: RawKeyValue[];
  startTimeUnixNano?: string;
  timeUnixNano?: string;
  count?: string;
  sum?: number;
  bucketCounts?: string[];
  explicitBounds?: number[];
}
interface RawMetric {
  name?: string;
  unit?: string;
  gauge?: { dataPoints?: RawNumberPoint[] };
  sum?: { dataPoints?: RawNumberPoint[]; aggregationTemporality?: number };
  histogram?: { dataPoints?: RawHistogramPoint[]; aggregationTemporality?: number };
}

function attrs(kvs: RawKeyValue[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const { key, value: v } of kvs ?? []) {
    out[key] = v?.stringValue ?? v?.boolValue ?? (v?.intValue !== undefined ? Number(v.intValue) : undefined) ?? v?.doubleValue ?? null;
  }
  return out;
}

/** Decodes an ExportMetricsServiceRequest into flat data points. Throws on bytes that are not one. */
export function decodeMetricsRequest(body: Buffer): ReceivedPoint[] {
  const { ExportMetricsServiceRequest } = otlpTypes();
  const msg = ExportMetricsServiceRequest.toObject(ExportMetricsServiceRequest.decode(body), { longs: String, defaults: false }) as {
    resourceMetrics?: { resource?: { attributes?: RawKeyValue[] }; scopeMetrics?: { metrics?: RawMetric[] }[] }[];
  };
  const out: ReceivedPoint[] = [];
  for (const rm of msg.resourceMetrics ?? []) {
    const resource = attrs(rm.resource?.attributes);
    for (const sm of rm.scopeMetrics ?? []) {
      for (const m of sm.metrics ?? []) {
        const base = { metric: m.name ?? '', unit: m.unit ?? '', resource };
        const number = (kind: 'gauge' | 'sum', temporality: number, p: RawNumberPoint): ReceivedPoint => ({
          ...base,
          kind,
          temporality,
          attributes: attrs(p.attributes),
          startTimeUnixNano: BigInt(p.startTimeUnixNano ?? '0'),
          timeUnixNano: BigInt(p.timeUnixNano ?? '0'),
          value: p.asDouble ?? Number(p.asInt ?? 0),
        });
        for (const p of m.gauge?.dataPoints ?? []) out.push(number('gauge', TEMPORALITY.unspecified, p));
        for (const p of m.sum?.dataPoints ?? []) out.push(number('sum', m.sum?.aggregationTemporality ?? 0, p));
        for (const p of m.histogram?.dataPoints ?? []) {
          out.push({
            ...base,
            kind: 'histogram',
            temporality: m.histogram?.aggregationTemporality ?? 0,
            attributes: attrs(p.attributes),
            startTimeUnixNano: BigInt(p.startTimeUnixNano ?? '0'),
            timeUnixNano: BigInt(p.timeUnixNano ?? '0'),
            count: Number(p.count ?? 0),
            sum: p.sum ?? 0,
            bucketCounts: (p.bucketCounts ?? []).map(Number),
            explicitBounds: p.explicitBounds ?? [],
          });
        }
      }
    }
  }
  return out;
}

/** One histogram's distribution: bounds and per-bucket counts (the last bucket is +Inf). */
export interface Distribution {
  readonly bounds: readonly number[];
  readonly counts: readonly number[];
  readonly count: number;
  readonly sum: number;
}

const seriesKey = (p: ReceivedPoint): string =>
  JSON.stringify(Object.entries(p.attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/**
 * The distribution of `points` (one histogram metric, any attributes matching
 * the caller's filter): cumulative points contribute their latest export per
 * series, delta points add up. undefined when there is none.
 */
export function distribution(points: readonly ReceivedPoint[]): Distribution | undefined {
  const hist = points.filter((p) => p.kind === 'histogram' && p.bucketCounts);
  if (hist.length === 0) return undefined;
  const latest = new Map<string, ReceivedPoint>();
  const deltas: ReceivedPoint[] = [];
  for (const p of hist) {
    if (p.temporality === TEMPORALITY.delta) deltas.push(p);
    else {
      const k = seriesKey(p);
      const prev = latest.get(k);
      if (!prev || prev.timeUnixNano <= p.timeUnixNano) latest.set(k, p);
    }
  }
  const use = [...latest.values(), ...deltas];
  const bounds = use[0]!.explicitBounds ?? [];
  const counts = new Array<number>(bounds.length + 1).fill(0);
  let count = 0;
  let sum = 0;
  for (const p of use) {
    (p.bucketCounts ?? []).forEach((c, i) => {
      if (i < counts.length) counts[i]! += c;
    });
    count += p.count ?? 0;
    sum += p.sum ?? 0;
  }
  return { bounds, counts, count, sum };
}

/**
 * The q-quantile (0..1) of a distribution, linear inside the bucket it falls
 * in, as Prometheus' histogram_quantile does; a quantile in the +Inf bucket is
 * the highest finite bound. NaN for an empty distribution.
 */
export function quantile(d: Distribution, q: number): number {
  if (d.count === 0) return NaN;
  const rank = q * d.count;
  let below = 0;
  for (let i = 0; i < d.counts.length; i++) {
    const c = d.counts[i]!;
    if (below + c >= rank && c > 0) {
      if (i >= d.bounds.length) return d.bounds[d.bounds.length - 1] ?? NaN;
      const lower = i === 0 ? 0 : d.bounds[i - 1]!;
      const upper = d.bounds[i]!;
      return lower + (upper - lower) * ((rank - below) / c);
    }
    below += c;
  }
  return d.bounds[d.bounds.length - 1] ?? NaN;
}

/**
 * The upper bound of the bucket the q-quantile falls in: what the histogram
 * can honestly say ("p95 ≤ 10 s"), without interpolating inside the bucket.
 * Infinity when it falls in the +Inf bucket; NaN for an empty distribution.
 */
export function quantileBound(d: Distribution, q: number): number {
  if (d.count === 0) return NaN;
  const rank = q * d.count;
  let below = 0;
  for (let i = 0; i < d.counts.length; i++) {
    below += d.counts[i]!;
    if (below >= rank && d.counts[i]! > 0) return i < d.bounds.length ? d.bounds[i]! : Infinity;
  }
  return Infinity;
}

/**
 * What a receiver keeps of the metric exports it accepted, and a bounded wait
 * on them. Bounded: a long-running receiver (`gitlab-otel inspect` behind a
 * proxy exporting every minute) keeps the latest `maxPoints` points and
 * `maxPoints` export records, dropping the oldest.
 */
export class ReceivedMetrics {
  readonly points: ReceivedPoint[] = [];
  /** Export calls accepted, with their arrival time (ms since epoch). */
  readonly exports: { at: number; points: number }[] = [];
  private waiters: { predicate: () => boolean; resolve: () => void }[] = [];

  constructor(private readonly maxPoints = 100_000) {}

  accept(points: ReceivedPoint[]): void {
    for (const p of points) this.points.push(p);
    this.exports.push({ at: Date.now(), points: points.length });
    if (this.points.length > this.maxPoints) this.points.splice(0, this.points.length - this.maxPoints);
    if (this.exports.length > this.maxPoints) this.exports.splice(0, this.exports.length - this.maxPoints);
    const ready = this.waiters.filter((w) => w.predicate());
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  /** Points of one metric, optionally only those whose attributes include `match`. */
  of(metric: string, match: Record<string, AttributeValue> = {}): ReceivedPoint[] {
    return this.points.filter((p) => p.metric === metric && Object.entries(match).every(([k, v]) => p.attributes[k] === v));
  }

  /** Resolves once `predicate` holds, or rejects after `timeoutMs`. */
  waitFor(predicate: (m: ReceivedMetrics) => boolean, timeoutMs = 10_000): Promise<void> {
    if (predicate(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate: () => predicate(this),
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`OTLP receiver: metrics condition not met within ${timeoutMs} ms (${this.exports.length} exports received)`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}
