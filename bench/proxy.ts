// Runner proxy overhead, measured side by side in one run: the same runner
// calls straight to the GitLab simulator and through the proxy (telemetry on,
// a real collector behind it), interleaved so both see the same machine noise.
// The proxy runs as its own process (`node dist/cli.js runner-proxy`), as in
// production, so its peak RSS (VmHWM) is its own.
//   1. p50/p99 of job request, job update and trace PATCH calls (target: p99 added ≤ 1 ms)
//   2. a streamed chunked artifact upload (target ≥ 0.9× direct throughput, proxy peak RSS ≤ 100 MB)
//   3. many concurrent jobs while the collector is down for a while: runner-side p99 with the
//      collector down vs up (target ≤ 1.05×), and the share of spans delivered after recovery
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { BenchFigure, BenchModule } from './types.js';
import { GitLabRunnerApiSimulator } from '../src/simulators/gitlab-runner-api.js';
import { buildJobLog } from '../src/simulators/job-log-builder.js';
import { makeJobPayload } from '../src/simulators/job-payload.js';
import { OtlpReceiver } from '../src/simulators/otlp-receiver.js';
import { RunnerSimulator, type ReceivedJob } from '../src/simulators/runner.js';
import { newTraceId } from '../src/telemetry/spans.js';

interface ProxyProcess {
  child: ChildProcess;
  url: string;
  peakRssBytes(): number;
  stop(): Promise<void>;
}

async function startProxyProcess(upstream: string, collector: string, queue: Record<string, unknown> = {}): Promise<ProxyProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-bench-'));
  const config = join(dir, 'proxy.yml');
  writeFileSync(
    config,
    JSON.stringify({
      listen: '127.0.0.1:0',
      admin: null,
      upstream: { url: upstream },
      endpoints: [{ name: 'bench', url: collector, compression: 'none', queue: { batch_delay: '200ms', max_age: '10m', ...queue }, retry: { initial_backoff: '200ms', max_backoff: '2s' } }],
      log_level: 'info',
    }),
  );
  const child = spawn(process.execPath, ['dist/cli.js', 'runner-proxy', '--config', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: ''},
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('proxy did not start within 15 s')), 15_000);
    const lines = createInterface({ input: child.stderr! });
    lines.on('line', (line) => {
      const m = /"listen":"[^"]*:(\d+)"/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`proxy exited with ${code}`)));
  });
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    peakRssBytes() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = /VmHWM:\s+(\d+) kB/.exec(status);
      return kb ? Number(kb[1]) * 1024 : NaN;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const round = (n: number, d = 3): number => Number(n.toFixed(d));

type CallKind = 'job request' | 'job update' | 'trace PATCH';

/** One job's worth of calls; returns each call's time by kind. */
async function jobCalls(gitlab: GitLabRunnerApiSimulator, runner: RunnerSimulator, id: number, log: Buffer): Promise<Record<CallKind, number[]>> {
  const out: Record<CallKind, number[]> = { 'job request': [], 'job update': [], 'trace PATCH': [] };
  gitlab.enqueue(makeJobPayload({ id, contract: { kind: 'tracing', traceId: newTraceId(), spanParentId: 'b7ad6b7169203331' } }));
  const t0 = performance.now();
  const job = (await runner.requestJob()) as ReceivedJob;
  out['job request'].push(performance.now() - t0);
  const chunk = 16 * 1024;
  const start = runner.sent.length;
  await runner.runJob(job, { log, state: 'success', patchSizes: Array(Math.ceil(log.length / chunk)).fill(chunk) });
  for (const ex of runner.sent.slice(start)) {
    if (ex.method === 'PUT') out['job update'].push(ex.ms);
    else if (ex.method === 'PATCH') out['trace PATCH'].push(ex.ms);
  }
  runner.sent.length = 0;
  return out;
}

async function latency(quick: boolean, log: (s: string) => void): Promise<BenchFigure[]> {
  const runnerToken = 'glrt-bench';
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken, record: false }).start();
  const receiver = await new OtlpReceiver().start();
  const proxy = await startProxyProcess(gitlab.url, receiver.url);
  const direct = new RunnerSimulator({ url: gitlab.url, token: runnerToken });
  const proxied = new RunnerSimulator({ url: proxy.url, token: runnerToken });
  const jobLog = buildJobLog('user-sections', { start: new Date(), timestamps: true }).bytes;
  const times = { direct: {} as Record<CallKind, number[]>, proxy: {} as Record<CallKind, number[]> };
  const jobs = quick ? 60 : 400;
  let id = 100_000;
  try {
    // Warm both paths (connections, JIT) before measuring.
    for (let i = 0; i < 10; i++) {
      await jobCalls(gitlab, direct, id++, jobLog);
      await jobCalls(gitlab, proxied, id++, jobLog);
    }
    for (let i = 0; i < jobs; i++) {
      // Alternate which goes first so neither side always runs on a warmer cache.
      const order = i % 2 === 0 ? (['direct', 'proxy'] as const) : (['proxy', 'direct'] as const);
      for (const side of order) {
        const r = await jobCalls(gitlab, side === 'direct' ? direct : proxied, id++, jobLog);
        for (const k of Object.keys(r) as CallKind[]) (times[side][k] ??= []).push(...r[k]);
      }
    }
    log(`proxy latency: ${jobs} jobs each way, ${receiver.spans.length} spans exported meanwhile`);
  } finally {
    direct.close();
    proxied.close();
    await proxy.stop();
    await receiver.stop();
    await gitlab.stop();
  }
  const figures: BenchFigure[] = [];
  for (const kind of ['job request', 'job update', 'trace PATCH'] as CallKind[]) {
    const d50 = percentile(times.direct[kind], 50);
    const p50 = percentile(times.proxy[kind], 50);
    const d99 = percentile(times.direct[kind], 99);
    const p99 = percentile(times.proxy[kind], 99);
    figures.push({ suite: 'runner-proxy', name: `${kind} p50 latency`, value: round(p50), baseline: round(d50), ratio: round(p50 / d50, 2), unit: 'ms' });
    figures.push({
      suite: 'runner-proxy',
      name: `${kind} p99 latency`,
      value: round(p99),
      baseline: round(d99),
      ratio: round(p99 / d99, 2),
      unit: 'ms',
      target: 'p99 added ≤ 1 ms',
      met: p99 - d99 <= 1,
      note: `added ${round(p99 - d99)} ms over ${times.proxy[kind].length} calls`,
    });
  }
  return figures;
}

async function artifacts(quick: boolean, log: (s: string) => void): Promise<BenchFigure[]> {
  const runnerToken = 'glrt-bench';
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken, record: false }).start();
  const receiver = await new OtlpReceiver().start();
  const proxy = await startProxyProcess(gitlab.url, receiver.url);
  const bytes = quick ? 128 * 1024 * 1024 : 1024 * 1024 * 1024;
  const direct = new RunnerSimulator({ url: gitlab.url, token: runnerToken, callTimeoutMs: 600_000 });
  const proxied = new RunnerSimulator({ url: proxy.url, token: runnerToken, callTimeoutMs: 600_000 });
  const rssBefore = proxy.peakRssBytes();
  const rate = { direct: [] as number[], proxy: [] as number[] };
  try {
    let id = 200_000;
    for (let i = 0; i < 2; i++) {
      for (const [side, runner] of [['direct', direct], ['proxy', proxied]] as const) {
        gitlab.enqueue(makeJobPayload({ id: ++id }));
        const job = (await runner.requestJob())!;
        const t0 = performance.now();
        const ex = await runner.uploadArtifact(job, bytes);
        const seconds = (performance.now() - t0) / 1000;
        if (ex.status !== 201 || gitlab.jobs.get(id)!.artifactsUploaded[0]?.sha256 !== ex.streamed?.sha256) {
          throw new Error(`artifact upload through ${side} was not delivered intact`);
        }
        rate[side].push(bytes / seconds / 1e6);
      }
    }
  } finally {
    direct.close();
    proxied.close();
  }
  const peak = proxy.peakRssBytes();
  await proxy.stop();
  await receiver.stop();
  await gitlab.stop();
  const best = (xs: number[]) => Math.max(...xs);
  log(`artifacts: ${bytes / 1024 / 1024} MiB each way, direct ${best(rate.direct).toFixed(0)} MB/s, proxy ${best(rate.proxy).toFixed(0)} MB/s`);
  return [
    {
      suite: 'runner-proxy',
      name: `artifact upload throughput (${bytes / 1024 / 1024} MiB, chunked)`,
      value: round(best(rate.proxy), 0),
      baseline: round(best(rate.direct), 0),
      ratio: round(best(rate.proxy) / best(rate.direct), 2),
      unit: 'MB/s',
      target: '≥ 0.9× direct',
      met: best(rate.proxy) / best(rate.direct) >= 0.9,
    },
    {
      suite: 'runner-proxy',
      name: 'proxy peak RSS during artifact uploads',
      value: round(peak / 1e6, 1),
      baseline: round(rssBefore / 1e6, 1),
      unit: 'MB',
      target: '≤ 100 MB',
      met: peak <= 100e6,
      note: 'baseline = peak RSS before the uploads',
    },
  ];
}

async function outage(quick: boolean, log: (s: string) => void): Promise<BenchFigure[]> {
  const runnerToken = 'glrt-bench';
  const jobs = quick ? 60 : 1000;
  const concurrency = quick ? 20 : 100;
  const outageMs = quick ? 3000 : 60_000;
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken, record: false }).start();
  let receiver = await new OtlpReceiver().start();
  const collectorPort = receiver.port;
  const proxy = await startProxyProcess(gitlab.url, receiver.url, { max_spans: 40_000, max_bytes: '256MiB' });
  const built = buildJobLog('user-sections', { start: new Date(), timestamps: true });
  const spansPerJob = 1 + built.sections.length;
  const runners = Array.from({ length: concurrency }, () => new RunnerSimulator({ url: proxy.url, token: runnerToken }));
  const phase = { up: [] as number[], down: [] as number[] };
  let down = false;
  let id = 300_000;
  let started = 0;
  const rssUp = proxy.peakRssBytes();
  const worker = async (runner: RunnerSimulator): Promise<void> => {
    while (started < jobs) {
      started++;
      const r = await jobCalls(gitlab, runner, ++id, built.bytes);
      const all = [...r['job request'], ...r['job update'], ...r['trace PATCH']];
      (down ? phase.down : phase.up).push(...all);
    }
  };
  const t0 = performance.now();
  const work = Promise.all(runners.map(worker));
  // Up for a while, then the collector goes away mid-run, then comes back.
  await new Promise((r) => setTimeout(r, quick ? 1500 : 10_000));
  const beforeOutage = receiver.spans.length;
  await receiver.stop();
  down = true;
  log(`outage: collector down for ${outageMs / 1000} s with ${jobs} jobs in progress`);
  await new Promise((r) => setTimeout(r, outageMs));
  down = false;
  receiver = await new OtlpReceiver({ port: collectorPort }).start();
  await work;
  const expected = jobs * spansPerJob;
  const delivered = () => beforeOutage + receiver.spans.length;
  const deadline = Date.now() + (quick ? 30_000 : 120_000);
  while (delivered() < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const seconds = (performance.now() - t0) / 1000;
  const peak = proxy.peakRssBytes();
  for (const r of runners) r.close();
  await proxy.stop();
  await receiver.stop();
  await gitlab.stop();
  const upP99 = percentile(phase.up, 99);
  const downP99 = percentile(phase.down, 99);
  log(`outage: ${delivered()}/${expected} spans delivered, ${phase.down.length} runner calls during the outage`);
  return [
    {
      suite: 'export',
      name: `runner-side p99 latency through the proxy, collector down vs up (${concurrency} concurrent jobs)`,
      value: round(downP99),
      baseline: round(upP99),
      ratio: round(downP99 / upP99, 2),
      unit: 'ms',
      target: '≤ 1.05×',
      met: downP99 / upP99 <= 1.05,
      note: `${phase.down.length} calls during the outage, ${phase.up.length} with the collector up`,
    },
    {
      suite: 'export',
      name: 'spans delivered after the collector came back',
      value: round((100 * delivered()) / expected, 2),
      unit: '%',
      target: '100 %',
      met: delivered() >= expected,
      note: `${delivered()} of ${expected} (${jobs} jobs × ${spansPerJob} spans) in ${seconds.toFixed(1)} s`,
    },
    {
      suite: 'export',
      name: 'proxy peak RSS with the collector down',
      value: round(peak / 1e6, 1),
      baseline: round(rssUp / 1e6, 1),
      unit: 'MB',
      target: 'within the queue bound (256 MiB)',
      met: peak - rssUp <= 256 * 1024 * 1024,
      note: 'baseline = peak RSS before the run',
    },
  ];
}

const bench: BenchModule = async ({ quick, log }) => [
  ...(await latency(quick, log)),
  ...(await artifacts(quick, log)),
  ...(await outage(quick, log)),
];

export default bench;
