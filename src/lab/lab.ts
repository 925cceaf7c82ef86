// A whole runner setup on loopback, in one process: the GitLab simulator, the
// real runner proxy with its real export pipeline, an OTLP receiver as the
// collector, and runner simulators pointed at the proxy (or straight at
// GitLab, for side-by-side measurements). The tests, the demo and the
// benchmarks all build on this one assembly.
import { randomBytes } from 'node:crypto';
import { envDefaults } from '../runner-proxy/config/load.js';
import { validateConfig } from '../runner-proxy/config/schema.js';
import { silentLogger, type Logger } from '../log.js';
import { startRunnerProxy, type RunningProxy } from '../runner-proxy/runtime.js';
import { GitLabRunnerApiSimulator, type GitLabRunnerApiOptions, type SimJob } from './gitlab-runner-api.js';
import { buildJobLog, type BuiltJobLog, type JobLogOptions, type JobLogScenario } from './job-log-builder.js';
import { makeJobPayload, type JobPayloadOptions } from './job-payload.js';
import { OtlpReceiver, type ReceiverOptions } from '../telemetry/receiver.js';
import { RunnerSimulator, type JobRunResult, type ReceivedJob, type RunnerSimulatorOptions } from './runner.js';

export interface LabOptions {
  /** Proxy configuration in the YAML file's shape; `upstream`, `listen` and the receiver endpoint are filled in. */
  proxyConfig?: Record<string, unknown>;
  gitlab?: Partial<GitLabRunnerApiOptions>;
  /** false: no receiver (endpoints come from proxyConfig, or none). */
  receiver?: ReceiverOptions | false;
  log?: Logger;
  /** OTEL_* variables the proxy reads as a deployment would (default none), e.g. OTEL_METRIC_EXPORT_INTERVAL. */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface Lab {
  gitlab: GitLabRunnerApiSimulator;
  receiver?: OtlpReceiver;
  proxy: RunningProxy;
  proxyUrl: string;
  runnerToken: string;
  /** A runner simulator whose `url` is the proxy. */
  runner(options?: Partial<RunnerSimulatorOptions>): RunnerSimulator;
  /** A runner simulator talking to GitLab directly (the baseline). */
  directRunner(options?: Partial<RunnerSimulatorOptions>): RunnerSimulator;
  stop(): Promise<void>;
}

export async function startLab(options: LabOptions = {}): Promise<Lab> {
  const runnerToken = `glrt-${randomBytes(12).toString('hex')}`;
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken, ...options.gitlab }).start();
  const receiver = options.receiver === false ? undefined : await new OtlpReceiver(options.receiver ?? {}).start();
  const doc: Record<string, unknown> = {
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    ...options.proxyConfig,
    upstream: { url: gitlab.url, ...(options.proxyConfig?.upstream as object | undefined) },
  };
  if (receiver && doc.endpoints === undefined) {
    doc.endpoints = [
      {
        name: 'lab',
        url: receiver.url,
        compression: 'none',
        queue: { batch_delay: '20ms' },
        retry: { initial_backoff: '50ms', max_backoff: '500ms' },
      },
    ];
  }
  const config = validateConfig(doc, envDefaults(options.env ?? {}).defaults);
  const proxy = await startRunnerProxy(config, { log: options.log ?? silentLogger });
  const proxyUrl = `http://127.0.0.1:${proxy.address.port}`;
  const runners: RunnerSimulator[] = [];
  const make = (url: string, o?: Partial<RunnerSimulatorOptions>) => {
    const r = new RunnerSimulator({ url, token: runnerToken, ...o });
    runners.push(r);
    return r;
  };
  return {
    gitlab,
    receiver,
    proxy,
    proxyUrl,
    runnerToken,
    runner: (o) => make(proxyUrl, o),
    directRunner: (o) => make(gitlab.url, o),
    async stop() {
      for (const r of runners) r.close();
      await proxy.stop();
      await receiver?.stop();
      await gitlab.stop();
    },
  };
}

export interface LabJob {
  sim: SimJob;
  received: ReceivedJob;
  log: BuiltJobLog;
  result: JobRunResult;
}

export interface RunLabJobOptions {
  payload: JobPayloadOptions;
  scenario?: JobLogScenario;
  log?: Partial<JobLogOptions>;
  patchSizes?: number[];
  artifactBytes?: number;
  /** Answers GitLab gives the final update before 200 (e.g. [202] or [412]). */
  finalAnswers?: number[];
  jobStatus?: string;
  beforePatch?: (index: number) => Promise<void> | void;
}

/** Queues one job in GitLab and has `runner` pick it up and run it through to its final update. */
export async function runLabJob(lab: Lab, runner: RunnerSimulator, o: RunLabJobOptions): Promise<LabJob> {
  const payload = makeJobPayload(o.payload);
  const sim = lab.gitlab.enqueue(payload, { finalAnswers: o.finalAnswers, jobStatus: o.jobStatus });
  const log = buildJobLog(o.scenario ?? 'success', { start: new Date(), timestamps: true, ...o.log });
  const received = await runner.requestJob();
  if (!received) throw new Error('the runner got no job');
  const result = await runner.runJob(received, {
    log: log.bytes,
    state: log.outcome.status,
    failureReason: log.outcome.failureReason,
    exitCode: log.outcome.exitCode,
    patchSizes: o.patchSizes,
    artifactBytes: o.artifactBytes,
    beforePatch: o.beforePatch,
  });
  return { sim, received, log, result };
}
