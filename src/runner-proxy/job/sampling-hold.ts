// Sampling of the jobs our own fallback enabled, and the hold for the spans of
// the ones it did not sample. GitLab samples the jobs it enables
// (features.tracing present = sampled, docs/runner-protocol.md#job-payload);
// only the `variable` contract is sampled here, by trace id alone: the
// pipeline's root span is derived, not observed, so it carries no sampled
// flag to inherit. An unsampled job's spans wait in a bounded hold until its
// outcome is known: a failed or canceled job is exported whole, any other is
// forgotten. Spans past the hold's bounds count as dropped.
import type { Resource } from '@opentelemetry/resources';
import type { Contract } from '../wire/negotiation.js';
import type { SpanSink } from '../../telemetry/export/pipeline.js';
import { countDropped, type SpansDropped } from '../../telemetry/export/export-metrics.js';
import type { EndpointSettings, SamplingSettings } from '../../telemetry/export/settings.js';
import { TraceSampling, UnsampledJobHold } from '../../telemetry/sampling.js';
import type { SpanRecord } from '../../telemetry/spans.js';
import type { JobOutcome } from './job-outcome.js';

/** Where a job's spans go. */
export interface SpanRoute {
  readonly jobId: number;
  /** false only for a fallback-enabled job the sampler dropped. */
  readonly sampled: boolean;
  readonly resource: Resource;
  readonly endpoints: readonly EndpointSettings[];
}

export class SamplingHold {
  private readonly sampling?: TraceSampling;
  private readonly hold?: UnsampledJobHold;

  constructor(
    settings: SamplingSettings | undefined,
    private readonly sink: SpanSink,
    private readonly dropped?: SpansDropped,
  ) {
    if (settings) {
      this.sampling = new TraceSampling(settings);
      this.hold = new UnsampledJobHold(settings);
    }
  }

  /** Spans held for unsampled jobs still running. */
  get heldSpans(): number {
    return this.hold?.heldSpans ?? 0;
  }

  isSampled(contract: Contract, traceId: string): boolean {
    return contract !== 'variable' || !this.sampling || this.sampling.isSampled({ traceId });
  }

  /** Spans of a sampled job go to the sink; an unsampled job's are held until it ends. */
  emit(job: SpanRoute, spans: SpanRecord[]): void {
    if (job.sampled || !this.hold) {
      this.sink.submit(spans, job.resource, job.endpoints);
      return;
    }
    const { overflow } = this.hold.hold(String(job.jobId), spans);
    if (overflow > 0 && this.dropped) {
      for (const e of job.endpoints) countDropped(this.dropped, e.name, 'sampling_hold_full', overflow);
    }
  }

  /** The job ended with `outcome`: its job span goes out, with what was held if the job is kept. */
  finish(job: SpanRoute, outcome: JobOutcome, jobSpan: SpanRecord): void {
    if (job.sampled || !this.hold) {
      this.sink.submit([jobSpan], job.resource, job.endpoints);
      return;
    }
    // Failed and canceled jobs are always kept, whatever the sampler said.
    const keep = outcome.state === 'failed' || outcome.state === 'canceled';
    const held = this.hold.release(String(job.jobId), keep);
    if (keep) this.sink.submit([...held, jobSpan], job.resource, job.endpoints);
  }

  /** Forgets what is held for a job (assigned again: its telemetry starts over). */
  discard(jobId: number): void {
    this.hold?.release(String(jobId), false);
  }
}
