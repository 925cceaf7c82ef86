// The decision on one job payload (docs/architecture.md#telemetry-thread): the
// part of the tracker's work that must happen while GitLab's 201 is held,
// because the runner needs its outcome in the edited bytes. It reads the
// payload once (job-assignment.ts), negotiates the contract, decides sampling
// and the job span's id, and edits the payload. Synchronous, no I/O; it only
// logs and counts what it decided. What it returns for the tracker is plain
// data (a DecidedJob): with `telemetry.thread: worker` it is posted to the
// telemetry worker as is (structured clone keeps its bigint).
import type { Counter } from 'prom-client';
import type { Logger } from '../../log.js';
import type { PayloadOtelEndpoint, SamplingSettings } from '../../telemetry/export/settings.js';
import { TraceSampling } from '../../telemetry/sampling.js';
import { newSpanId, newTraceId } from '../../telemetry/spans.js';
import type { Contract, NegotiationOptions } from '../wire/negotiation.js';
import type { JobView, RunnerView } from '../wire/payload.js';
import { editAssignedPayload, readAssignment, traceContextVariables, type TraceContextOptions } from './job-assignment.js';
import { tokenDigest } from './job-tokens.js';

/** A job the decision hands to tracking: plain data only (no class instance, no function, no token). */
export interface DecidedJob {
  readonly view: JobView;
  readonly runner: RunnerView;
  /** `none`: followed for CI/CD metrics only (docs/metrics.md#every-job). */
  readonly contract: Contract | 'none';
  readonly traceId: string;
  readonly jobSpanId: string;
  readonly parentSpanId?: string;
  readonly payloadEndpoints: readonly PayloadOtelEndpoint[];
  readonly sampled: boolean;
  /** When the 201 arrived, epoch ns. */
  readonly assignedAt: bigint;
  /** SHA-256 of the payload's job token (docs/security.md#job-tokens), hex; absent: the payload had none. */
  readonly tokenDigest?: string;
}

export interface JobDecisionMetrics {
  negotiation: Counter<'outcome'>;
  payloadEndpointsLeftToRunner?: Counter<'reason'>;
}

export interface JobDecisionOptions {
  negotiation: NegotiationOptions;
  traceContext: TraceContextOptions;
  sampling?: SamplingSettings;
  /** CI/CD metrics on: jobs without telemetry are decided too, as `contract: 'none'`. */
  followForMetrics: boolean;
  log: Logger;
  metrics?: JobDecisionMetrics;
}

export interface Decision {
  /** Replacement payload text; undefined: GitLab's bytes go to the runner unchanged. */
  readonly edited?: string;
  /** The job to track; undefined: nothing to follow. */
  readonly job?: DecidedJob;
}

/** Whether a job's spans are exported at once: GitLab samples the jobs it enables; only `variable` jobs are sampled here. */
export function isJobSampled(sampling: TraceSampling | undefined, contract: Contract, samplingKey: string): boolean {
  return contract !== 'variable' || !sampling || sampling.isSampled({ traceId: samplingKey });
}

export class JobDecider {
  private readonly sampling?: TraceSampling;

  constructor(private readonly options: JobDecisionOptions) {
    if (options.sampling) this.sampling = new TraceSampling(options.sampling);
  }

  decide(text: string, requestBody: Buffer | undefined, at: bigint): Decision {
    const { log, metrics } = this.options;
    const assignment = readAssignment(text, requestBody, this.options.negotiation);
    if (!assignment.telemetry) {
      metrics?.negotiation.inc({ outcome: assignment.outcome });
      if (assignment.warning) {
        const { bytes, jobId } = assignment;
        log('warn', assignment.warning, bytes !== undefined ? { bytes } : jobId !== undefined ? { job_id: jobId } : undefined);
      }
      const followed = assignment.metricsOnly;
      if (!followed || !this.options.followForMetrics) return {};
      return {
        job: {
          view: followed.view,
          runner: followed.runner,
          contract: 'none',
          // Ids only to link stage spans to their job inside the proxy; never sent anywhere.
          traceId: newTraceId(),
          jobSpanId: newSpanId(),
          payloadEndpoints: [],
          sampled: false,
          assignedAt: at,
          ...(followed.jobToken ? { tokenDigest: tokenDigest(followed.jobToken) } : {}),
        },
      };
    }
    const { view, runner, decision } = assignment;
    metrics?.negotiation.inc({ outcome: decision.contract });
    for (const w of decision.warnings) log('warn', w, { job_id: view.jobId });
    if (decision.leftToRunner.length > 0) {
      // Those collectors still get the runner's own job_execution span; the proxy's spans do not go there.
      const byConfig = decision.leftToRunner.every((l) => l.reason === 'not_served_by_config');
      log(byConfig ? 'info' : 'warn', "GitLab's collectors the proxy cannot serve are left to the runner's native span", {
        job_id: view.jobId,
        endpoints: decision.leftToRunner.map((l) => `${l.where} (${l.reason})`).join(', '),
      });
      for (const l of decision.leftToRunner) metrics?.payloadEndpointsLeftToRunner?.inc({ reason: l.reason });
    }
    if (view.schemaProblems.length > 0) {
      log('warn', `job payload fields of unexpected type: ${view.schemaProblems.join('; ')}`, { job_id: view.jobId });
    }
    const job: DecidedJob = {
      view,
      runner,
      contract: decision.contract,
      traceId: decision.traceId,
      jobSpanId: newSpanId(),
      ...(decision.parentSpanId !== undefined ? { parentSpanId: decision.parentSpanId } : {}),
      payloadEndpoints: decision.payloadEndpoints,
      sampled: isJobSampled(this.sampling, decision.contract, decision.samplingKey),
      assignedAt: at,
      ...(assignment.jobToken ? { tokenDigest: tokenDigest(assignment.jobToken) } : {}),
    };
    const variables = traceContextVariables(this.options.traceContext, view, job);
    const edited = editAssignedPayload(text, decision.runnerTracing, variables);
    return edited === undefined ? { job } : { job, edited };
  }
}
