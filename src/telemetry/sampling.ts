// Which jobs are exported. A job GitLab enabled (features.tracing present) was
// sampled upstream and is exported whole. A job enabled by the fallback
// variable is sampled by trace id with the SDK's own TraceIdRatioBased sampler,
// so every job of a pipeline (one trace id) gets the same answer here and in
// any other OpenTelemetry JS SDK. An unsampled job's spans are held until its
// outcome is known, because failed jobs are always kept.
import { ROOT_CONTEXT, SpanKind, TraceFlags, trace } from '@opentelemetry/api';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  type Sampler,
} from '@opentelemetry/sdk-trace';
import { DEFAULT_SAMPLING, type SamplerName, type SamplingSettings } from './export/settings.js';
import type { SpanRecord } from './spans.js';

const SAMPLERS: readonly SamplerName[] = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
];

export interface SamplingEnvResult {
  settings: SamplingSettings;
  /** Problems with the variables, for one log line at start-up; defaults were used instead. */
  warnings: string[];
}

/** OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG as the SDK environment spec defines them. */
export function samplingFromEnv(env: Readonly<Record<string, string | undefined>>): SamplingEnvResult {
  const warnings: string[] = [];
  const raw = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase();
  let sampler = DEFAULT_SAMPLING.sampler;
  if (raw) {
    if ((SAMPLERS as readonly string[]).includes(raw)) sampler = raw as SamplerName;
    else warnings.push(`OTEL_TRACES_SAMPLER '${raw}' is not supported; using ${sampler}`);
  }
  let ratio = 1;
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  if (sampler.endsWith('traceidratio') && arg !== undefined && arg !== '') {
    const n = Number(arg);
    if (Number.isFinite(n) && n >= 0 && n <= 1) ratio = n;
    else warnings.push(`OTEL_TRACES_SAMPLER_ARG '${arg}' is not a number in [0, 1]; using 1`);
  }
  return { settings: { ...DEFAULT_SAMPLING, sampler, ratio }, warnings };
}

function buildSampler(s: SamplingSettings): Sampler {
  switch (s.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(s.ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(s.ratio) });
  }
}

export interface SamplingInput {
  readonly traceId: string;
  /** The job span's parent, when one is known, and whether it was sampled. */
  readonly parent?: { readonly spanId: string; readonly sampled: boolean };
}

/** Decides whether a fallback-enabled job's trace is sampled. Pure. */
export class TraceSampling {
  private readonly sampler: Sampler;
  constructor(readonly settings: SamplingSettings) {
    this.sampler = buildSampler(settings);
  }

  isSampled(input: SamplingInput): boolean {
    const ctx = input.parent
      ? trace.setSpanContext(ROOT_CONTEXT, {
          traceId: input.traceId,
          spanId: input.parent.spanId,
          traceFlags: input.parent.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
          isRemote: true,
        })
      : ROOT_CONTEXT;
    const result = this.sampler.shouldSample(ctx, input.traceId, 'job_execution', SpanKind.INTERNAL, {}, []);
    return result.decision === SamplingDecision.RECORD_AND_SAMPLED;
  }
}

export interface HoldResult {
  /** Spans that could not be held (bounds reached); the caller counts them as dropped. */
  readonly overflow: number;
}

/**
 * Holds the spans of unsampled jobs until the job ends. Bounded per job and
 * overall; what does not fit is reported, never kept.
 */
export class UnsampledJobHold {
  private readonly jobs = new Map<string, SpanRecord[]>();
  private total = 0;
  constructor(private readonly limits: Pick<SamplingSettings, 'maxHeldSpansPerJob' | 'maxHeldSpans'>) {}

  get heldSpans(): number {
    return this.total;
  }

  hold(jobId: string, spans: readonly SpanRecord[]): HoldResult {
    const held = this.jobs.get(jobId) ?? [];
    const room = Math.max(0, Math.min(this.limits.maxHeldSpansPerJob - held.length, this.limits.maxHeldSpans - this.total));
    const taken = spans.slice(0, room);
    if (taken.length > 0) {
      held.push(...taken);
      this.jobs.set(jobId, held);
      this.total += taken.length;
    }
    return { overflow: spans.length - taken.length };
  }

  /** The job ended: its held spans if it failed (to export), otherwise nothing. Either way they are released. */
  release(jobId: string, failed: boolean): SpanRecord[] {
    const held = this.jobs.get(jobId) ?? [];
    this.jobs.delete(jobId);
    this.total -= held.length;
    return failed ? held : [];
  }
}
