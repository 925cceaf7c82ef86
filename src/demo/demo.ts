// `gitlab-otel demo`: the product working end to end, in one process, on
// loopback, on GitLab 19's contract (docs/runner-protocol.md#job-telemetry).
// The GitLab simulator queues a top-level pipeline's jobs, each with
// `features.tracing`: GitLab's trace id for the pipeline, no span_parent_id,
// and its collector named as an OTLP/HTTP URL string. Runner simulators pick
// the jobs up through the real runner proxy and upload realistic job logs in
// real time; the proxy's real export pipeline sends job and stage spans over
// OTLP/HTTP to that collector (a receiver serving OTLP/HTTP, as GitLab's
// does), with no collector of its own configured; the inspector's own
// assembly and waterfall show the trace at the end.
//
// With collectorDownMs the collector is not listening at first: the jobs run
// untouched while the proxy keeps their spans queued and retries, and the
// spans arrive once it listens. Everything is bounded in time.
import net from 'node:net';
import { assembleTraces, type Trace } from '../inspect/trace-tree.js';
import { traceToJson, type TraceJson } from '../inspect/trace-json.js';
import { renderWaterfall } from '../inspect/waterfall.js';
import type { Logger } from '../log.js';
import { buildJobLog, type JobLogScenario } from '../lab/job-log-builder.js';
import { makeJobPayload } from '../lab/job-payload.js';
import { startLab, type Lab } from '../lab/lab.js';
import { OtlpHttpReceiver, type ReceivedSpan } from '../telemetry/receiver.js';
import { replayChunks } from './log-replay.js';
import { arrivalLines, clock, painter, summaryLines, type Paint, type Tone } from './narration.js';
import { freshDemoIds, planDemoPipeline, type DemoIds, type DemoJobPlan } from './pipeline-plan.js';
import { JOB_SPAN_NAME, SpanProgress } from './span-progress.js';
import { metricsSummaryLines, summarizeMetrics, type MetricsSummary } from './metrics-summary.js';

export interface DemoOptions {
  /** Jobs of the pipeline, all run at once. */
  jobs: number;
  /** One job fails in its script: ERROR spans. */
  fail: boolean;
  /** The collector starts listening only this long after the demo starts (0: at once). */
  collectorDownMs: number;
  /** One JSON document on `out`; progress goes to `err`. */
  json: boolean;
  /** Compress stage durations further and start jobs closer together (tests). */
  quick: boolean;
  color: boolean;
  /** Line width of the waterfall. */
  width: number;
  /** Bound on waiting for the spans once the jobs are done and the collector listens (default 30 s). */
  deliveryTimeoutMs?: number;
  /** Fixed ids (tests); fresh random ones otherwise. */
  ids?: DemoIds;
}

export interface DemoOutput {
  out: (text: string) => void;
  err: (text: string) => void;
}

export type DemoProblemCode =
  | 'DEMO_RUNNER_CALL_FAILED'
  | 'DEMO_COLLECTOR_LISTEN_FAILED'
  | 'DEMO_SPANS_NOT_DELIVERED'
  | 'DEMO_SPANS_DROPPED'
  | 'DEMO_JOB_NOT_FOLLOWED'
  | 'DEMO_METRICS_NOT_DELIVERED';

export interface DemoProblem {
  code: DemoProblemCode;
  message: string;
}

export interface DemoJobResult {
  id: number;
  name: string;
  stage: string;
  scenario: JobLogScenario;
  /** What the runner reported at the end: the job's own outcome, or `error` when the runner could not finish it. */
  state: 'success' | 'failed' | 'error';
  /** HTTP status of the accepted final update (0 when it never happened). */
  finalStatus: number;
  patches: number;
  runnerCalls: number;
  /** Runner calls answered ≥ 400 or not answered at all. */
  runnerErrors: number;
  /** The proxy's job_execution span id (empty when the proxy did not follow the job). */
  jobSpanId: string;
  /** Spans of this job the collector received. */
  spans: number;
  /** Ms from the demo's start. */
  pickedUpAtMs: number;
  finishedAtMs: number;
  finishedWhileCollectorDown: boolean;
}

export interface DemoResult {
  ok: boolean;
  pipelineId: number;
  traceId: string;
  jobs: DemoJobResult[];
  traces: TraceJson[];
  counts: {
    spansReceived: number;
    exportCalls: number;
    spansExported: number;
    spansDropped: number;
    droppedByReason: Record<string, number>;
    traces: number;
    errorSpans: number;
    runnerCalls: number;
    runnerErrors: number;
  };
  collector: {
    url: string;
    downForMs: number;
    /** Ms from the start at which it began listening. */
    upAtMs: number;
    jobsFinishedWhileDown: number;
    /** Spans that ended before the collector listened: the proxy held them and delivered them after. */
    spansHeldWhileDown: number;
  };
  /** CI/CD metrics as the collector received them (docs/metrics.md#demo). */
  metrics: MetricsSummary;
  problems: DemoProblem[];
  wallMs: number;
}

const DEFAULT_DELIVERY_TIMEOUT_MS = 30_000;
/** Stage durations are this many times shorter than in the realistic plan. */
const SPEED = { normal: 20, quick: 100 } as const;
const STAGGER_MS = { normal: 150, quick: 40 } as const;
/**
 * The runner's first poll after the pipeline is created (gitlab-runner polls every check_interval, 3 s by
 * default): the jobs wait about a second in GitLab's queue, which GitLab reports in whole seconds, so the
 * waterfall shows its `queued` bars (docs/metrics.md#queue-time). None in the quick form.
 */
const FIRST_PICKUP_MS = { normal: 1_000, quick: 0 } as const;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** A free loopback port for a collector that starts later. */
async function reservePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function counter(lab: Lab, name: string): Promise<Map<string, number>> {
  const metric = lab.proxy.registry.getSingleMetric(name);
  const byReason = new Map<string, number>();
  if (!metric) return byReason;
  const { values } = await metric.get();
  for (const v of values) {
    const key = String((v.labels as Record<string, string | number>).reason ?? '');
    byReason.set(key, (byReason.get(key) ?? 0) + v.value);
  }
  return byReason;
}

const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

export async function runDemo(options: DemoOptions, output: DemoOutput): Promise<DemoResult> {
  const startedAt = Date.now();
  const elapsed = (): number => Date.now() - startedAt;
  const paint: Paint = painter(options.color);
  const progress = options.json ? output.err : output.out;
  const say = (text: string, tone: Tone = 'plain'): void => progress(`${paint('dim', clock(elapsed()))} ${paint(tone, text)}\n`);
  const problems: DemoProblem[] = [];
  const problem = (code: DemoProblemCode, message: string): void => {
    problems.push({ code, message });
  };

  const speed = options.quick ? SPEED.quick : SPEED.normal;
  const plan = planDemoPipeline(
    {
      jobs: options.jobs,
      fail: options.fail,
      speed,
      staggerMs: options.quick ? STAGGER_MS.quick : STAGGER_MS.normal,
      firstPickupMs: options.quick ? FIRST_PICKUP_MS.quick : FIRST_PICKUP_MS.normal,
    },
    options.ids ?? freshDemoIds(),
  );
  const names = new Map(plan.jobs.map((j) => [j.id, j.name]));
  const byId = new Map(plan.jobs.map((j) => [j.id, j]));

  // The collector: started now, or only after collectorDownMs on a port reserved for it.
  const spanProgress = new SpanProgress();
  const received: ReceivedSpan[] = [];
  let exportCalls = 0;
  let collectorUp = false;
  let lastArrivalMs = 0;
  const collectorPort = await reservePort();
  const receiver = new OtlpHttpReceiver({
    host: '127.0.0.1',
    port: collectorPort,
    onSpans: (spans) => {
      exportCalls += 1;
      received.push(...spans);
      lastArrivalMs = elapsed();
      for (const line of arrivalLines(spans, spanProgress.receive(spans), names, paint)) say(line);
    },
  });
  // The collector GitLab names in every job payload (its ci_telemetry_otel_endpoint setting).
  const collectorUrl = `http://127.0.0.1:${collectorPort}/v1/traces`;

  const proxyLog: Logger = (level, msg, fields) => {
    if (msg === 'endpoint_state' && fields?.to === 'failing') {
      say(`proxy: collector unreachable (${String(fields.reason ?? 'error')}); jobs carry on, spans wait in the proxy's queue`, 'warn');
    } else if (msg === 'endpoint_state' && fields?.to === 'up' && fields.from === 'failing') {
      say('proxy: collector reachable again, sending the queued spans', 'good');
    } else if (level === 'warn' || level === 'error') {
      const detail = Object.entries(fields ?? {})
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ');
      say(`proxy ${level}: ${msg}${detail ? ` (${detail})` : ''}`, 'warn');
    }
  };

  const lab = await startLab({
    receiver: false,
    log: proxyLog,
    proxyConfig: {
      // No collector of the proxy's own: the spans go where GitLab's payload says.
      endpoints: [],
      telemetry: {
        // A loopback collector is refused unless named (docs/security.md#payload-endpoints).
        payload_endpoints: { allowed_hosts: [`127.0.0.1:${collectorPort}`] },
      },
      // CI/CD metrics go to configured collectors only, never to a payload's: name the demo's for them.
      // They arrive with the final export when the proxy stops (docs/metrics.md#demo).
      metrics: {
        endpoints: [{ name: 'demo', protocol: 'http/protobuf', url: `http://127.0.0.1:${collectorPort}/v1/metrics`, compression: 'none' }],
      },
      shutdown: { grace: '2s', flush_timeout: '3s' },
    },
  });

  let upAtMs = 0;
  let upAtNs = 0n;
  const startCollector = async (): Promise<void> => {
    try {
      await receiver.start();
      collectorUp = true;
      upAtMs = elapsed();
      upAtNs = BigInt(Date.now()) * 1_000_000n;
    } catch (err) {
      problem('DEMO_COLLECTOR_LISTEN_FAILED', `the collector could not listen on ${collectorUrl}: ${(err as Error).message}`);
    }
  };

  const results: DemoJobResult[] = [];
  try {
    say(
      `loopback lab up: GitLab simulator ${lab.gitlab.url}, runner proxy ${lab.proxyUrl}, collector ${collectorUrl}` +
        (speed > 1 ? ` (stages run ${speed}× faster than real)` : ''),
      'dim',
    );
    if (options.collectorDownMs > 0) {
      say(`collector is down for the first ${(options.collectorDownMs / 1000).toFixed(1)}s: nothing listens on ${collectorUrl}`, 'warn');
    } else {
      await startCollector();
    }

    // The pipeline: every job queued in GitLab at once, one trace for all of them.
    for (const job of plan.jobs) {
      lab.gitlab.enqueue(
        makeJobPayload({
          id: job.id,
          name: job.name,
          stage: job.stage,
          pipelineId: plan.pipelineId,
          // A top-level pipeline's job as GitLab 19 sends it: no span_parent_id.
          contract: { kind: 'tracing', endpoints: [collectorUrl] },
          // GitLab's whole seconds of waiting: the real wait before this job's pick-up (docs/metrics.md#queue-time).
          timeInQueueSeconds: Math.floor(job.pickupDelayMs / 1000),
        }),
      );
    }
    say(`pipeline ${plan.pipelineId} created: ${plan.jobs.map((j) => j.name).join(', ')} · trace ${plan.traceId}`);

    const collectorTimer =
      options.collectorDownMs > 0
        ? sleep(options.collectorDownMs).then(async () => {
            await startCollector();
            if (!collectorUp) return;
            const done = results.filter((r) => r.finishedWhileCollectorDown).length;
            say(`collector up on ${collectorUrl}; ${done} of ${plan.jobs.length} jobs finished while it was down`, 'good');
          })
        : Promise.resolve();

    const runs = plan.jobs.map((_, i) => runOneJob(i));
    async function runOneJob(index: number): Promise<void> {
      const job = plan.jobs[index]!;
      await sleep(job.pickupDelayMs);
      const runner = lab.runner({ callTimeoutMs: 10_000 });
      const result: DemoJobResult = {
        id: job.id,
        name: job.name,
        stage: job.stage,
        scenario: job.scenario,
        state: 'error',
        finalStatus: 0,
        patches: 0,
        runnerCalls: 0,
        runnerErrors: 0,
        jobSpanId: '',
        spans: 0,
        pickedUpAtMs: 0,
        finishedAtMs: 0,
        finishedWhileCollectorDown: false,
      };
      let planned: DemoJobPlan = job;
      try {
        const got = await runner.requestJob();
        if (!got) throw new Error('the runner asked for a job and got none');
        // Runners poll in any order: the job picked up is whichever GitLab handed out.
        planned = byId.get(got.id) ?? job;
        Object.assign(result, { id: planned.id, name: planned.name, stage: planned.stage, scenario: planned.scenario });
        result.pickedUpAtMs = elapsed();
        const context = lab.proxy.tracker.jobContext(got.id);
        if (context) {
          result.jobSpanId = context.spanId;
          for (const line of arrivalLines([], spanProgress.jobStarted(got.id, context.spanId), names, paint)) say(line);
        } else {
          problem('DEMO_JOB_NOT_FOLLOWED', `the proxy is not following job ${got.id}`);
        }
        say(`job ${got.id} (${planned.name}) picked up by the runner`);
        const log = buildJobLog(planned.scenario, { start: new Date(), timestamps: true, durationsMs: planned.durationsMs });
        const chunks = replayChunks(log.bytes, BigInt(Date.now()) * 1_000_000n);
        const run = await runner.runJob(got, {
          log: log.bytes,
          state: log.outcome.status,
          failureReason: log.outcome.failureReason,
          exitCode: log.outcome.exitCode,
          patchSizes: chunks.map((c) => c.bytes),
          // Each PATCH goes out when the log's clock reaches its last line: the stages end in real time.
          beforePatch: (i) => sleep(chunks[i] ? Number(chunks[i].atNs / 1_000_000n) - Date.now() : 0),
        });
        result.state = log.outcome.status;
        result.finalStatus = run.finalStatus;
        result.patches = run.patches;
      } catch (err) {
        problem('DEMO_RUNNER_CALL_FAILED', `job ${planned.id} (${planned.name}): ${(err as Error).message}`);
      } finally {
        result.runnerCalls = runner.sent.length;
        result.runnerErrors = runner.sent.filter((e) => e.status >= 400 || e.status === 0).length + (result.state === 'error' ? 1 : 0);
        result.finishedAtMs = elapsed();
        result.finishedWhileCollectorDown = options.collectorDownMs > 0 && !collectorUp;
        results.push(result);
      }
      const how =
        result.state === 'error'
          ? paint('bad', 'could not finish')
          : `${result.state === 'failed' ? paint('bad', 'failed ✗') : paint('good', 'succeeded')} (final update ${result.finalStatus}, ${result.patches} log uploads)`;
      say(
        `job ${result.id} (${result.name}) ${how} on the runner` +
          (result.finishedWhileCollectorDown ? paint('warn', ' — collector still down, its spans wait in the proxy') : ''),
      );
    }
    await Promise.all(runs);
    await collectorTimer;

    // Delivery: every followed job's job_execution span (exported last, at its final update) has arrived and the queue is empty.
    const deliveryTimeoutMs = options.deliveryTimeoutMs ?? DEFAULT_DELIVERY_TIMEOUT_MS;
    const followed = new Set(results.filter((r) => r.jobSpanId !== '').map((r) => r.jobSpanId));
    if (collectorUp) {
      try {
        await receiver.waitFor(
          (spans) => [...followed].every((id) => spans.some((s) => s.spanId === id && s.name === JOB_SPAN_NAME)),
          deliveryTimeoutMs,
        );
        await lab.proxy.pipeline.flush(deliveryTimeoutMs);
      } catch {
        problem('DEMO_SPANS_NOT_DELIVERED', `not every job span reached the collector within ${deliveryTimeoutMs} ms`);
      }
    }
  } finally {
    await lab.stop();
    await receiver.stop();
  }

  const dropped = await counter(lab, 'gitlab_otel_spans_dropped_total');
  const exported = sum(await counter(lab, 'gitlab_otel_spans_exported_total'));
  if (sum(dropped) > 0) {
    problem('DEMO_SPANS_DROPPED', `the proxy dropped ${sum(dropped)} span(s): ${[...dropped].map(([r, n]) => `${r}=${n}`).join(', ')}`);
  }
  if (spanProgress.unplaced > 0 && problems.length === 0) {
    problem('DEMO_SPANS_NOT_DELIVERED', `${spanProgress.unplaced} span(s) arrived whose parent never did`);
  }

  const metrics = summarizeMetrics(receiver.metrics.points, receiver.metrics.exports.length);
  if (collectorUp && metrics.job?.count !== results.length) {
    problem('DEMO_METRICS_NOT_DELIVERED', `the collector counted ${metrics.job?.count ?? 0} of ${results.length} jobs in ci.job.duration`);
  }

  const traces: Trace[] = assembleTraces(received);
  const jobs = [...results].sort((a, b) => a.id - b.id);
  for (const job of jobs) {
    const mine = new Set([job.jobSpanId]);
    // A job's spans are its job span and everything below it.
    for (let grew = true; grew;) {
      grew = false;
      for (const s of received) {
        if (!mine.has(s.spanId) && mine.has(s.parentSpanId)) {
          mine.add(s.spanId);
          grew = true;
        }
      }
    }
    job.spans = received.filter((s) => mine.has(s.spanId)).length;
  }
  // Spans that ended while nothing listened, so the proxy had to hold them.
  const heldSpans = options.collectorDownMs > 0 ? received.filter((s) => s.endTimeUnixNano < upAtNs).length : 0;
  const runnerCalls = jobs.reduce((n, j) => n + j.runnerCalls, 0);
  const runnerErrors = jobs.reduce((n, j) => n + j.runnerErrors, 0);
  const wallMs = elapsed();
  const result: DemoResult = {
    ok: problems.length === 0,
    pipelineId: plan.pipelineId,
    traceId: plan.traceId,
    jobs,
    traces: traces.map(traceToJson),
    counts: {
      spansReceived: received.length,
      exportCalls,
      spansExported: exported,
      spansDropped: sum(dropped),
      droppedByReason: Object.fromEntries(dropped),
      traces: traces.length,
      errorSpans: traces.reduce((n, t) => n + t.errorCount, 0),
      runnerCalls,
      runnerErrors,
    },
    collector: {
      url: collectorUrl,
      downForMs: options.collectorDownMs,
      upAtMs,
      jobsFinishedWhileDown: jobs.filter((j) => j.finishedWhileCollectorDown).length,
      spansHeldWhileDown: heldSpans,
    },
    metrics,
    problems,
    wallMs,
  };

  if (options.json) {
    output.out(`${JSON.stringify(result, null, 2)}\n`);
    return result;
  }
  output.out('\n');
  for (const trace of traces) output.out(`${renderWaterfall(trace, { width: options.width, color: options.color, attributes: false })}\n`);
  for (const line of metricsSummaryLines(metrics, paint)) output.out(`${line}\n`);
  output.out('\n');
  for (const line of summaryLines(
    {
      pipelineId: plan.pipelineId,
      jobs,
      spans: received.length,
      traces: traces.length,
      failedSpans: result.counts.errorSpans,
      dropped: result.counts.spansDropped,
      runnerCalls,
      runnerErrors,
      wallMs,
      ...(options.collectorDownMs > 0
        ? {
            collectorDown: {
              downMs: options.collectorDownMs,
              jobsFinishedWhileDown: result.collector.jobsFinishedWhileDown,
              spansAfterRecovery: heldSpans,
              ...(upAtMs > 0 && lastArrivalMs >= upAtMs ? { lastSpanAfterUpMs: lastArrivalMs - upAtMs } : {}),
            },
          }
        : {}),
      problems: problems.map((p) => `${p.message} (${p.code})`),
    },
    paint,
  )) {
    output.out(`${line}\n`);
  }
  return result;
}
