// Export pipeline throughput and resilience: ~15 spans per simulated job to
// the local OTLP receiver. Ours (per-endpoint queue, batching, retry) vs the
// SDK's OTLPTraceExporter called directly with the same batches; then a
// collector outage in the middle of the run: share delivered after recovery
// and peak RSS against the configured queue bound.
import { credentials, status } from '@grpc/grpc-js';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { Registry } from 'prom-client';
import { OtlpReceiver } from '../src/telemetry/receiver.js';
import { ExportPipeline } from '../src/telemetry/export/pipeline.js';
import { DEFAULT_QUEUE, type EndpointSettings } from '../src/telemetry/export/settings.js';
import { newSpanId, newTraceId, SpanKind, SpanStatusCode, toReadableSpan, type SpanRecord } from '../src/telemetry/spans.js';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { BenchFigure, BenchModule } from './types.js';

const resource = resourceFromAttributes({ 'service.name': 'bench' });

function jobSpans(): SpanRecord[] {
  const traceId = newTraceId();
  const t0 = BigInt(Date.now()) * 1_000_000n;
  return Array.from({ length: 15 }, (_, i) => ({
    traceId,
    spanId: newSpanId(),
    name: i === 0 ? 'job_execution' : `stage_${i}`,
    kind: SpanKind.INTERNAL,
    startTimeUnixNano: t0,
    endTimeUnixNano: t0 + 1_000_000n,
    attributes: { 'ci.job.id': i, 'ci.job.name': 'build', 'ci.stage.name': `stage_${i}` },
    status: { code: SpanStatusCode.OK },
  }));
}

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? 0;
}

function settings(url: string): EndpointSettings {
  return {
    name: 'bench',
    url,
    compression: 'none',
    timeoutMs: 10_000,
    headers: {},
    allowInsecureAuth: false,
    auth: { type: 'none' },
    queue: { ...DEFAULT_QUEUE, maxSpans: 50_000, maxBytes: 64 << 20, batchDelayMs: 50 },
    retry: { initialBackoffMs: 100, maxBackoffMs: 1000 },
  };
}

const bench: BenchModule = async ({ quick, log }) => {
  const jobs = quick ? 100 : 1000;
  const outageMs = quick ? 3000 : 60_000;
  const figures: BenchFigure[] = [];

  // 1. Throughput and latency, collector up.
  const submitted = new Map<string, number>();
  const latencies: number[] = [];
  const receiver = await new OtlpReceiver({
    onSpans: (spans) => {
      const now = performance.now();
      for (const s of spans) {
        const t = submitted.get(s.spanId);
        if (t !== undefined) latencies.push(now - t);
      }
    },
  }).start();
  const ep = settings(receiver.url);
  const pipeline = await ExportPipeline.create({ endpoints: [ep], registry: new Registry(), log: () => undefined });
  const all = Array.from({ length: jobs }, jobSpans);
  const total = all.length * 15;
  let t0 = performance.now();
  for (const spans of all) {
    const now = performance.now();
    for (const s of spans) submitted.set(s.spanId, now);
    pipeline.submit(spans, resource, [ep]);
  }
  await receiver.waitForSpans(total, 120_000);
  const ours = total / ((performance.now() - t0) / 1000);
  await pipeline.shutdown(2000);

  // Baseline: the SDK exporter, same spans, batches of 512, two in flight.
  const exporter = new OTLPTraceExporter({ url: receiver.url, credentials: credentials.createInsecure() });
  const readable = all.flat().map((s) => toReadableSpan(s, resource));
  const before = receiver.spans.length;
  t0 = performance.now();
  const batches: (typeof readable)[] = [];
  for (let i = 0; i < readable.length; i += 512) batches.push(readable.slice(i, i + 512));
  for (let i = 0; i < batches.length; i += 2) {
    await Promise.all(batches.slice(i, i + 2).map((b) => new Promise((r) => exporter.export(b, r))));
  }
  await receiver.waitForSpans(before + total, 120_000);
  const baseline = total / ((performance.now() - t0) / 1000);
  await exporter.shutdown();
  figures.push({
    suite: 'export',
    name: 'export throughput',
    value: Math.round(ours),
    unit: 'spans/s',
    baseline: Math.round(baseline),
    ratio: ours / baseline,
    note: `${jobs} jobs × 15 spans; baseline = OTLPTraceExporter direct`,
  });
  figures.push({
    suite: 'export',
    name: 'p99 submit-to-collector latency',
    value: Math.round(p99(latencies)),
    unit: 'ms',
    note: `batch delay ${ep.queue.batchDelayMs} ms`,
  });
  await receiver.stop();
  log(`export: ${Math.round(ours)} spans/s (baseline ${Math.round(baseline)})`);

  // 2. Outage in the middle.
  let down = false;
  const r2 = await new OtlpReceiver({ behaviour: () => (down ? { kind: 'error', code: status.UNAVAILABLE } : { kind: 'ok' }) }).start();
  const ep2 = settings(r2.url);
  const registry = new Registry();
  const p2 = await ExportPipeline.create({ endpoints: [ep2], registry, log: () => undefined });
  const rssBefore = process.memoryUsage().rss;
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const half = Math.floor(jobs / 2);
  const started = performance.now();
  for (let i = 0; i < jobs; i++) {
    if (i === half) down = true;
    p2.submit(jobSpans(), resource, [ep2]);
    if (i >= half) await new Promise((r) => setTimeout(r, outageMs / (jobs - half)));
  }
  down = false;
  log(`export: outage over after ${Math.round(performance.now() - started)} ms`);
  await r2.waitForSpans(total, 120_000).catch(() => undefined);
  clearInterval(sampler);
  const delivered = new Set(r2.spans.map((s) => s.spanId)).size;
  await p2.shutdown(2000);
  await r2.stop();
  figures.push({
    suite: 'export',
    name: 'spans delivered after an outage',
    value: (100 * delivered) / total,
    unit: '%',
    target: '100 %',
    met: delivered === total,
    note: `${outageMs / 1000} s outage`,
  });
  const growthMiB = (peak - rssBefore) / (1 << 20);
  const boundMiB = ep2.queue.maxBytes / (1 << 20);
  figures.push({
    suite: 'export',
    name: 'RSS growth during the outage',
    value: Math.round(growthMiB * 10) / 10,
    unit: 'MiB',
    target: `≤ queue bound ${boundMiB} MiB`,
    met: growthMiB <= boundMiB,
  });
  return figures;
};

export default bench;
