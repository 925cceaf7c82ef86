// Runner proxy overhead, measured side by side in one run: the same runner
// calls straight to the GitLab simulator, through a plain Node pass-through
// proxy (the floor any Node proxy pays here), and through our proxy with
// telemetry on and a real collector behind it, interleaved so all see the same
// machine noise. Our proxy and the collector run as their own processes, as in
// production, so the proxy's peak RSS (VmHWM) is its own.
//   1. p50/p99 of job request, job update and trace PATCH calls (target: p99 added ≤ 1 ms)
//   2. a streamed chunked artifact upload (target ≥ 0.9× direct throughput, proxy peak RSS ≤ 100 MB)
//   3. many concurrent jobs while the collector is down for a while: runner-side p99 with the
//      collector down vs up (target ≤ 1.05×), and the share of spans delivered after recovery
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { BenchFigure, BenchModule } from './types.js';
import { GitLabRunnerApiSimulator } from '../src/lab/gitlab-runner-api.js';
import { buildJobLog } from '../src/lab/job-log-builder.js';
import { makeJobPayload } from '../src/lab/job-payload.js';
import { RunnerSimulator, type ReceivedJob } from '../src/lab/runner.js';
import { newTraceId } from '../src/telemetry/spans.js';

interface ProxyProcess {
  child: ChildProcess;
  url: string;
  peakRssBytes(): number;
  stop(): Promise<void>;
}

/** Starts a proxy process and waits for its `"listen":"host:port"` log line. */
async function startProcess(args: string[]): Promise<ProxyProcess> {
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' },
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('proxy did not start within 15 s')), 15_000);
    // Keep reading stderr for the process's whole life, or its writes would block.
    createInterface({ input: child.stderr }).on('line', (line) => {
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
      const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return kb ? Number(kb[1]) * 1024 : NaN;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** Our proxy, built (`npm run bench` builds first), as in production. */
function startOurProxy(upstream: string, collector: string, queue: Record<string, unknown> = {}): Promise<ProxyProcess> {
  const config = join(mkdtempSync(join(tmpdir(), 'gitlab-otel-bench-')), 'proxy.yml');
  writeFileSync(
    config,
    JSON.stringify({
      listen: '127.0.0.1:0',
      admin: null,
      upstream: { url: upstream },
      endpoints: [
        {
          name: 'bench',
          url: collector,
          compression: 'none',
          queue: { batch_delay: '200ms', max_age: '10m', ...queue },
          retry: { initial_backoff: '200ms', max_backoff: '2s' },
        },
      ],
      log_level: 'info',
    }),
  );
  return startProcess(['dist/cli.js', 'runner-proxy', '--config', config]);
}

function startPassthroughProxy(upstream: string): Promise<ProxyProcess> {
  return startProcess(['--import', 'tsx', 'bench/passthrough-proxy.ts', upstream]);
}

interface Collector {
  url: string;
  port: number;
  spans(): Promise<number>;
  stop(): Promise<void>;
}

/** An OTLP receiver in its own process (bench/collector-process.ts). */
async function startCollector(port = 0): Promise<Collector> {
  const child = fork('bench/collector-process.ts', [String(port)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const bound = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('collector did not start within 15 s')), 15_000);
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve((m as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`collector exited with ${code}`)));
  });
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    spans: () =>
      new Promise((resolve) => {
        child.once('message', (m) => resolve((m as { spans: number }).spans));
        child.send('count');
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
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
async function jobCalls(
  gitlab: GitLabRunnerApiSimulator,
  runner: RunnerSimulator,
  id: number,
  log: Buffer,
  pauseMs = 0,
): Promise<Record<CallKind, number[]>> {
  const out: Record<CallKind, number[]> = { 'job request': [], 'job update': [], 'trace PATCH': [] };
  gitlab.enqueue(makeJobPayload({ id, contract: { kind: 'tracing', traceId: newTraceId(), spanParentId: 'b7ad6b7169203331' } }));
  const t0 = performance.now();
  const job = (await runner.requestJob()) as ReceivedJob;
  out['job request'].push(performance.now() - t0);
  const chunk = 16 * 1024;
  const start = runner.sent.length;
  await runner.runJob(job, {
    log,
    state: 'success',
    patchSizes: Array(Math.ceil(log.length / chunk)).fill(chunk),
    beforePatch: pauseMs > 0 ? () => new Promise((r) => setTimeout(r, pauseMs)) : undefined,
  });
  for (const ex of runner.sent.slice(start)) {
    if (ex.method === 'PUT') out['job update'].push(ex.ms);
    else if (ex.method === 'PATCH') out['trace PATCH'].push(ex.ms);
  }
  runner.sent.length = 0;
  return out;
}

type Side = 'direct' | 'passthrough' | 'proxy';
const SIDES: Side[] = ['direct', 'passthrough', 'proxy'];
const KINDS: CallKind[] = ['job request', 'job update', 'trace PATCH'];

async function latency(quick: boolean, log: (s: string) => void): Promise<BenchFigure[]> {
  const runnerToken = 'glrt-bench';
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken, record: false }).start();
  const collector = await startCollector();
  const proxy = await startOurProxy(gitlab.url, collector.url);
  const plain = await startPassthroughProxy(gitlab.url);
  const runners: Record<Side, RunnerSimulator> = {
    direct: new RunnerSimulator({ url: gitlab.url, token: runnerToken }),
    passthrough: new RunnerSimulator({ url: plain.url, token: runnerToken }),
    proxy: new RunnerSimulator({ url: proxy.url, token: runnerToken }),
  };
  const jobLog = buildJobLog('user-sections', { start: new Date(), timestamps: true }).bytes;
  const times = Object.fromEntries(SIDES.map((s) => [s, Object.fromEntries(KINDS.map((k) => [k, [] as number[]]))])) as Record<
    Side,
    Record<CallKind, number[]>
  >;
  const jobs = quick ? 60 : 500;
  let id = 100_000;
  try {
    // Warm every path (connections, JIT) before measuring.
    for (let i = 0; i < 10; i++) for (const side of SIDES) await jobCalls(gitlab, runners[side], id++, jobLog);
    for (let i = 0; i < jobs; i++) {
      // Rotate the order so no side always runs right after another.
      for (let k = 0; k < SIDES.length; k++) {
        const side = SIDES[(i + k) % SIDES.length]!;
        const r = await jobCalls(gitlab, runners[side], id++, jobLog);
        for (const kind of KINDS) times[side][kind].push(...r[kind]);
      }
    }
    log(`latency: ${jobs} jobs per side, ${await collector.spans()} spans exported by the proxy meanwhile`);
  } finally {
    for (const r of Object.values(runners)) r.close();
    await proxy.stop();
    await plain.stop();
    await collector.stop();
    await gitlab.stop();
  }
  const figures: BenchFigure[] = [];
  for (const kind of KINDS) {
    const [d50, p50, t50] = [times.direct, times.proxy, times.passthrough].map((x) => percentile(x[kind], 50)) as [number, number, number];
    const [d99, p99, t99] = [times.direct, times.proxy, times.passthrough].map((x) => percentile(x[kind], 99)) as [number, number, number];
    figures.push({
      suite: 'runner-proxy',
      name: `${kind} p50 latency`,
      value: round(p50),
      baseline: round(d50),
      ratio: round(p50 / d50, 2),
      unit: 'ms',
      note: `plain pass-through proxy: ${round(t50)} ms`,
    });
    figures.push({
      suite: 'runner-proxy',
      name: `${kind} p99 latency`,
      value: round(p99),
      baseline: round(d99),
      ratio: round(p99 / d99, 2),
      unit: 'ms',
      target: 'p99 added ≤ 1 ms',
      met: p99 - d99 <= 1,
      note: `added ${round(p99 - d99)} ms; a plain Node pass-through proxy (no telemetry) adds ${round(t99 - d99)} ms; ${times.proxy[kind].length} calls`,
    });
  }
  return figures;
}

async function artifacts(quick: boolean, log: (s: string) => void): Promise<BenchFigure[]> {
  const runnerToken = 'glrt-bench';
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken, record: false }).start();
  const collector = await startCollector();
  const proxy = await startOurProxy(gitlab.url, collector.url);
  const plain = await startPassthroughProxy(gitlab.url);
  const bytes = quick ? 128 * 1024 * 1024 : 1024 * 1024 * 1024;
  const urls: Record<Side, string> = { direct: gitlab.url, passthrough: plain.url, proxy: proxy.url };
  const rssBefore = proxy.peakRssBytes();
  const rate: Record<Side, number[]> = { direct: [], passthrough: [], proxy: [] };
  let plainPeak: number;
  let id = 200_000;
  try {
    for (let i = 0; i < 3; i++) {
      for (const side of SIDES) {
        const runner = new RunnerSimulator({ url: urls[side], token: runnerToken, callTimeoutMs: 600_000 });
        gitlab.enqueue(makeJobPayload({ id: ++id }));
        const job = (await runner.requestJob())!;
        const t0 = performance.now();
        const ex = await runner.uploadArtifact(job, bytes);
        const seconds = (performance.now() - t0) / 1000;
        runner.close();
        if (ex.status !== 201 || gitlab.jobs.get(id)!.artifactsUploaded[0]?.sha256 !== ex.streamed?.sha256) {
          throw new Error(`artifact upload through ${side} was not delivered intact`);
        }
        rate[side].push(bytes / seconds / 1e6);
      }
    }
  } finally {
    plainPeak = plain.peakRssBytes();
    await plain.stop();
  }
  const peak = proxy.peakRssBytes();
  await proxy.stop();
  await collector.stop();
  await gitlab.stop();
  // The median of three runs per side: one slow run on a shared machine should not decide.
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  log(
    `artifacts: ${bytes / 1024 / 1024} MiB × 3 per side: direct ${med(rate.direct).toFixed(0)}, pass-through ${med(rate.passthrough).toFixed(0)}, proxy ${med(rate.proxy).toFixed(0)} MB/s`,
  );
  return [
    {
      suite: 'runner-proxy',
      name: `artifact upload throughput (${bytes / 1024 / 1024} MiB, chunked, median of 3)`,
      value: round(med(rate.proxy), 0),
      baseline: round(med(rate.direct), 0),
      ratio: round(med(rate.proxy) / med(rate.direct), 2),
      unit: 'MB/s',
      target: '≥ 0.9× direct',
      met: med(rate.proxy) / med(rate.direct) >= 0.9,
      note: `plain pass-through proxy: ${round(med(rate.passthrough), 0)} MB/s (${round(med(rate.passthrough) / med(rate.direct), 2)}×)`,
    },
    {
      suite: 'runner-proxy',
      name: 'proxy peak RSS during artifact uploads',
      value: round(peak / 1e6, 1),
      baseline: round(rssBefore / 1e6, 1),
      unit: 'MB',
      target: '≤ 100 MB',
      met: peak <= 100e6,
      note: `baseline = the proxy's peak RSS before the uploads; a plain Node pass-through proxy peaked at ${round(plainPeak / 1e6, 1)} MB on the same uploads`,
    },
  ];
}

async function collectorOutage(quick: boolean, log: (s: string) => void): Promise<BenchFigure[]> {
  // The shape: a thousand concurrent jobs of about 15 spans each, a
  // collector outage in their middle. Each job uploads its log in 20 PATCHes
  // spread over its life, so every job straddles the outage.
  const runnerToken = 'glrt-bench';
  const jobs = quick ? 100 : 1000;
  const outageMs = quick ? 3000 : 60_000;
  const upMs = quick ? 2000 : 15_000;
  const jobMs = upMs * 2 + outageMs;
  const patches = 20;
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken, record: false }).start();
  let collector = await startCollector();
  const proxy = await startOurProxy(gitlab.url, collector.url);
  const built = buildJobLog('user-sections', { start: new Date(), timestamps: true });
  const spansPerJob = 1 + built.sections.length;
  const chunk = Math.ceil(built.bytes.length / patches);
  const calls = { up: [] as number[], down: [] as number[] };
  const outage: { start?: number; end?: number } = {};
  const t0 = performance.now();
  const steadyFrom = t0 + upMs / 2;
  const runOne = async (i: number): Promise<void> => {
    // Start the thousand jobs over the first second, not in one burst.
    await new Promise((r) => setTimeout(r, (i * 1000) / jobs));
    const runner = new RunnerSimulator({ url: proxy.url, token: runnerToken });
    runner.record = false;
    runner.onCall = (ex) => {
      // Steady state only: after the thousand job requests of the start have settled, and
      // (collector up) before the outage, so the start-up burst is not charged to either side.
      if (ex.startedAt < steadyFrom) return;
      if (outage.start === undefined) calls.up.push(ex.ms);
      else if (outage.end === undefined) calls.down.push(ex.ms);
    };
    gitlab.enqueue(
      makeJobPayload({ id: 300_000 + i, contract: { kind: 'tracing', traceId: newTraceId(), spanParentId: 'b7ad6b7169203331' } }),
    );
    const job = (await runner.requestJob())!;
    await runner.runJob(job, {
      log: built.bytes,
      state: 'success',
      patchSizes: Array(patches).fill(chunk),
      beforePatch: () => new Promise((r) => setTimeout(r, jobMs / patches)),
    });
    runner.close();
  };
  const work = Promise.all(Array.from({ length: jobs }, (_, i) => runOne(i)));
  await new Promise((r) => setTimeout(r, upMs));
  const port = collector.port;
  const beforeOutage = await collector.spans();
  // What the outage adds is measured against the proxy's peak with all jobs running and the collector up.
  const rssBeforeOutage = proxy.peakRssBytes();
  await collector.stop();
  outage.start = performance.now();
  log(`outage: collector down for ${outageMs / 1000} s with ${jobs} jobs in progress`);
  await new Promise((r) => setTimeout(r, outageMs));
  outage.end = performance.now();
  collector = await startCollector(port);
  await work;
  const expected = jobs * spansPerJob;
  const delivered = async () => beforeOutage + (await collector.spans());
  const deadline = Date.now() + (quick ? 30_000 : 120_000);
  while ((await delivered()) < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  const got = await delivered();
  const seconds = (performance.now() - t0) / 1000;
  const peak = proxy.peakRssBytes();
  await proxy.stop();
  await collector.stop();
  await gitlab.stop();
  const upP99 = percentile(calls.up, 99);
  const downP99 = percentile(calls.down, 99);
  log(
    `outage: ${got}/${expected} spans delivered; ${calls.down.length} runner calls during the outage, ${calls.up.length} with the collector up`,
  );
  return [
    {
      suite: 'export',
      name: `runner-side p99 latency through the proxy, collector down vs up (${jobs} concurrent jobs)`,
      value: round(downP99),
      baseline: round(upP99),
      ratio: round(downP99 / upP99, 2),
      unit: 'ms',
      target: '≤ 1.05×',
      met: downP99 / upP99 <= 1.05,
      note: `steady state: ${calls.down.length} calls during the outage, ${calls.up.length} in the ${upMs / 2000} s before it`,
    },
    {
      suite: 'export',
      name: 'spans delivered after the collector came back',
      value: round((100 * got) / expected, 2),
      unit: '%',
      target: '100 %',
      met: got >= expected,
      note: `${got} of ${expected} (${jobs} jobs × ${spansPerJob} spans), ${seconds.toFixed(0)} s in all`,
    },
    {
      suite: 'export',
      name: 'proxy peak RSS over the outage',
      value: round(peak / 1e6, 1),
      baseline: round(rssBeforeOutage / 1e6, 1),
      unit: 'MB',
      target: 'growth within the queue bound (64 MiB)',
      met: peak - rssBeforeOutage <= 64 * 1024 * 1024,
      note: `baseline = peak RSS with all ${jobs} jobs running just before the outage; queue bound = queue.max_bytes (default 64 MiB)`,
    },
  ];
}

const bench: BenchModule = async ({ quick, log }) => [
  ...(await latency(quick, log)),
  ...(await artifacts(quick, log)),
  ...(await collectorOutage(quick, log)),
];

export default bench;
