// Shared by the job-log tests: run a built log through LogSpans in given
// PATCH pieces and describe the spans independently of their random ids.
import type { BuiltJobLog, ExpectedSection } from '../../src/lab/job-log-builder.js';
import { LogSpans, type LogSpansContext } from '../../src/runner-proxy/job-log/log-spans.js';
import type { SpanRecord } from '../../src/telemetry/spans.js';

export const CTX: LogSpansContext = {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  jobSpanId: '00f067aa0ba902b7',
  maxSpans: 1000,
  maxAttributeLength: 256,
};

/** A seeded PRNG (mulberry32) so random tests are reproducible. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Start time, then enclosing before enclosed (later end first), then name: stable with whole-second times. */
function order(s1: bigint, e1: bigint, n1: string, s2: bigint, e2: bigint, n2: string): number {
  if (s1 !== s2) return s1 < s2 ? -1 : 1;
  if (e1 !== e2) return e1 > e2 ? -1 : 1;
  return n1 < n2 ? -1 : n1 > n2 ? 1 : 0;
}

export interface Described {
  name: string;
  parent: string;
  start: bigint;
  end: bigint;
  status: number;
  attributes: Record<string, unknown>;
}

/** Spans with ids replaced by `name#n` labels (n counts same-named spans in start order). */
export function describe(spans: readonly SpanRecord[], jobSpanId = CTX.jobSpanId): Described[] {
  const sorted = [...spans].sort((a, b) =>
    order(a.startTimeUnixNano, a.endTimeUnixNano, a.name, b.startTimeUnixNano, b.endTimeUnixNano, b.name),
  );
  const label = new Map<string, string>([[jobSpanId, 'job']]);
  const seen = new Map<string, number>();
  for (const s of sorted) {
    const n = (seen.get(s.name) ?? 0) + 1;
    seen.set(s.name, n);
    label.set(s.spanId, `${s.name}#${n}`);
  }
  return sorted.map((s) => ({
    name: label.get(s.spanId)!,
    parent: s.parentSpanId ? (label.get(s.parentSpanId) ?? 'unknown') : 'none',
    start: s.startTimeUnixNano,
    end: s.endTimeUnixNano,
    status: s.status.code,
    attributes: { ...s.attributes },
  }));
}

/** Feed `pieces` (offset, bytes) as accepted PATCHes, then the final update. */
export function run(
  log: BuiltJobLog,
  pieces: Iterable<[number, Buffer]>,
  ctx: LogSpansContext = CTX,
): { spans: SpanRecord[]; job: LogSpans; maxRetained: number } {
  const spans: SpanRecord[] = [];
  const job = new LogSpans(ctx, (s) => spans.push(s));
  let maxRetained = 0;
  for (const [start, body] of pieces) {
    job.accept(start, body);
    maxRetained = Math.max(maxRetained, job.retainedBytes);
  }
  const { status, failureReason, exitCode } = log.outcome;
  job.finish(status === 'success' ? { state: 'success' } : { state: 'failed', failureReason, exitCode }, log.endNs);
  return { spans, job, maxRetained };
}

export function* splitAt(bytes: Buffer, cuts: readonly number[]): Generator<[number, Buffer]> {
  let prev = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    if (c <= prev || c >= bytes.length) continue;
    yield [prev, bytes.subarray(prev, c)];
    prev = c;
  }
  yield [prev, bytes.subarray(prev)];
}

export function* randomPieces(bytes: Buffer, rand: () => number, maxPiece: number): Generator<[number, Buffer]> {
  let pos = 0;
  while (pos < bytes.length) {
    const len = 1 + Math.floor(rand() * maxPiece);
    yield [pos, bytes.subarray(pos, pos + len)];
    pos += len;
  }
}

/** The spans a correct parser must produce for a built log, in the same shape as `describe`. */
export function expected(log: BuiltJobLog): Array<Pick<Described, 'name' | 'parent' | 'start' | 'end' | 'status'>> {
  const byStart = [...log.sections].sort((a, b) => order(a.startNs, a.endNs ?? log.endNs, a.name, b.startNs, b.endNs ?? log.endNs, b.name));
  const seen = new Map<string, number>();
  const labels = new Map<ExpectedSection, string>();
  const lastLabel = new Map<string, string>();
  const out: Array<Pick<Described, 'name' | 'parent' | 'start' | 'end' | 'status'>> = [];
  for (const s of byStart) {
    const n = (seen.get(s.name) ?? 0) + 1;
    seen.set(s.name, n);
    const label = `${s.name}#${n}`;
    labels.set(s, label);
    const parent = s.kind === 'stage' ? 'job' : (lastLabel.get(s.parent ?? '') ?? 'job');
    lastLabel.set(s.name, label);
    out.push({ name: label, parent, start: s.startNs, end: s.endNs ?? log.endNs, status: s.status === 'failed' ? 2 : 0 });
  }
  return out;
}
