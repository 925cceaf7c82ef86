// The pipeline the demo runs: which jobs, in what order, with which job log
// scenario and how long each build stage takes. Durations are realistic
// (a Ruby project on the docker executor) and then compressed by `speed`, so
// the whole demo takes seconds while the waterfall keeps realistic proportions.
//
// Pure: ids come from the caller (freshDemoIds draws random ones).
import { randomBytes } from 'node:crypto';
import type { JobLogScenario } from '../lab/job-log-builder.js';
import { gitlabTraceId } from '../telemetry/pipeline-ids.js';

/** Every stage the log builder can write, so none falls back to its uncompressed default. */
type StageDurations = Record<
  | 'prepare_executor'
  | 'prepare_script'
  | 'get_sources'
  | 'clear_worktree'
  | 'restore_cache'
  | 'download_artifacts'
  | 'step_script'
  | 'after_script'
  | 'archive_cache'
  | 'archive_cache_on_failure'
  | 'upload_artifacts_on_success'
  | 'upload_artifacts_on_failure'
  | 'cleanup_file_variables',
  number
>;

const COMMON: Omit<StageDurations, 'step_script'> = {
  prepare_executor: 6_200,
  prepare_script: 1_100,
  get_sources: 2_400,
  clear_worktree: 300,
  restore_cache: 1_800,
  download_artifacts: 900,
  after_script: 900,
  archive_cache: 3_300,
  archive_cache_on_failure: 2_900,
  upload_artifacts_on_success: 2_100,
  upload_artifacts_on_failure: 1_700,
  cleanup_file_variables: 400,
};

interface JobTemplate {
  name: string;
  stage: string;
  scenario: JobLogScenario;
  /** The job script's own time, before compression. */
  scriptMs: number;
}

/**
 * The jobs of the demo pipeline, in queue order. Their scenarios show what the
 * proxy reads from a log: plain stages, user sections nested in step_script,
 * the runner's FF_SCRIPT_SECTIONS and a retried get_sources.
 */
const TEMPLATES: readonly JobTemplate[] = [
  { name: 'build', stage: 'build', scenario: 'success', scriptMs: 18_000 },
  { name: 'test:unit', stage: 'test', scenario: 'user-sections', scriptMs: 34_000 },
  { name: 'lint', stage: 'test', scenario: 'script-sections', scriptMs: 9_000 },
  { name: 'test:integration', stage: 'test', scenario: 'get-sources-retry', scriptMs: 27_000 },
  { name: 'docs', stage: 'test', scenario: 'success', scriptMs: 12_000 },
  { name: 'deploy:review', stage: 'deploy', scenario: 'success', scriptMs: 15_000 },
];

export const FIRST_JOB_ID = 101;

export interface DemoJobPlan {
  id: number;
  name: string;
  stage: string;
  scenario: JobLogScenario;
  /** Compressed stage durations for buildJobLog. */
  durationsMs: StageDurations;
  /** When the runner asks for this job, from the demo's start (runners poll at slightly different times). */
  pickupDelayMs: number;
}

export interface DemoPlan {
  pipelineId: number;
  /**
   * One trace for the whole pipeline, derived from the (root) pipeline id as GitLab
   * derives `features.tracing.trace_id` (docs/runner-protocol.md#trace-ids).
   */
  traceId: string;
  jobs: DemoJobPlan[];
  /** How many times faster than real the stages run. */
  speed: number;
}

export interface DemoIds {
  pipelineId: number;
}

export interface PlanOptions {
  jobs: number;
  /** Make one job fail in its script (the second, or the only one). */
  fail: boolean;
  speed: number;
  /** Gap between two jobs' pickups, in real (compressed) ms. */
  staggerMs: number;
  /** When the first runner asks for a job, from the pipeline's creation: the jobs' wait in GitLab's queue (default 0). */
  firstPickupMs?: number;
}

export function freshDemoIds(): DemoIds {
  return { pipelineId: 1_000_000 + randomBytes(3).readUIntBE(0, 3) };
}

/** The index of the job `--fail` turns into a script failure. */
export function failingJobIndex(jobs: number): number {
  return Math.min(1, jobs - 1);
}

export function planDemoPipeline(options: PlanOptions, ids: DemoIds): DemoPlan {
  const compress = (ms: number): number => Math.max(1, Math.round(ms / options.speed));
  const jobs: DemoJobPlan[] = [];
  for (let i = 0; i < options.jobs; i++) {
    const template = TEMPLATES[i % TEMPLATES.length]!;
    const round = Math.floor(i / TEMPLATES.length);
    const failing = options.fail && i === failingJobIndex(options.jobs);
    const durations = { ...COMMON, step_script: template.scriptMs };
    for (const key of Object.keys(durations) as (keyof StageDurations)[]) durations[key] = compress(durations[key]);
    jobs.push({
      id: FIRST_JOB_ID + i,
      // Past the templates, repeat them as parallel copies, the way `parallel: N` names jobs.
      name: round === 0 ? template.name : `${template.name} ${round + 1}`,
      stage: template.stage,
      scenario: failing ? 'script-failure' : template.scenario,
      durationsMs: durations,
      pickupDelayMs: (options.firstPickupMs ?? 0) + i * options.staggerMs,
    });
  }
  return { pipelineId: ids.pipelineId, traceId: gitlabTraceId(ids.pipelineId), jobs, speed: options.speed };
}
