// The `queued` bar drawn before each job in the waterfalls: derived from the
// job span's own `ci.job.time_in_queue_seconds` (GitLab's whole seconds;
// docs/metrics.md#queue-time), so it shows whether or not the optional
// `job_queued` span (telemetry.queue_span) was exported. It ends where the job
// span starts and sits beside it, under the same parent. A job whose
// `job_queued` span arrived gets no derived bar: that span is drawn instead.
// Pure: received spans in, the derived bars out.
import type { ReceivedSpan } from '../telemetry/receiver.js';

export const QUEUED_BAR = 'queued';
const QUEUE_ATTRIBUTE = 'ci.job.time_in_queue_seconds';

const derived = new WeakSet<ReceivedSpan>();

/** Whether a span is a derived queued bar (not received: never the trace's head, never counted as a span). */
export function isQueueBar(span: ReceivedSpan): boolean {
  return derived.has(span);
}

export function queueBars(spans: readonly ReceivedSpan[]): ReceivedSpan[] {
  const withQueueSpan = new Set<string>();
  for (const s of spans) if (s.name === 'job_queued') withQueueSpan.add(`${s.parentSpanId}/${String(s.attributes['ci.job.id'])}`);
  const bars: ReceivedSpan[] = [];
  for (const job of spans) {
    if (job.name !== 'job_execution') continue;
    const seconds = job.attributes[QUEUE_ATTRIBUTE];
    if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) continue;
    if (withQueueSpan.has(`${job.parentSpanId}/${String(job.attributes['ci.job.id'])}`)) continue;
    const queuedNs = BigInt(Math.round(seconds * 1e9));
    const bar: ReceivedSpan = {
      ...job,
      // Not a span id: a key no received span can have (ids are hex), so it never collides.
      spanId: `queued:${job.spanId}`,
      name: QUEUED_BAR,
      startTimeUnixNano: job.startTimeUnixNano > queuedNs ? job.startTimeUnixNano - queuedNs : 0n,
      endTimeUnixNano: job.startTimeUnixNano,
      attributes: {
        [QUEUE_ATTRIBUTE]: seconds,
        ...(job.attributes['ci.job.name'] !== undefined ? { 'ci.job.name': job.attributes['ci.job.name'] } : {}),
      },
      status: { code: 0, message: '' },
    };
    derived.add(bar);
    bars.push(bar);
  }
  return bars;
}
