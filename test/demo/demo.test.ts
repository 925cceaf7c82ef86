// `gitlab-otel demo`: its pure parts (log replay cuts, the pipeline plan,
// placing arriving spans, the narration, argument parsing) directly, and the
// whole demo in its quick form through runDemo and the CLI, asserting on the
// structure of what it reports, never on timings.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildJobLog } from '../../src/lab/job-log-builder.js';
import type { ReceivedSpan } from '../../src/telemetry/receiver.js';
import { CI } from '../../src/telemetry/attributes.js';
import type { SpanJson } from '../../src/inspect/trace-json.js';
import { lineStampNs, replayChunks } from '../../src/demo/log-replay.js';
import { failingJobIndex, planDemoPipeline, type DemoIds } from '../../src/demo/pipeline-plan.js';
import { SpanProgress } from '../../src/demo/span-progress.js';
import { arrivalLines, DETAILED_ARRIVAL_MAX, painter, summaryLines } from '../../src/demo/narration.js';
import { parseDemoArgs, DemoUsageError } from '../../src/demo/command.js';
import { runDemo, type DemoOptions, type DemoResult } from '../../src/demo/demo.js';
import { CHILD_NODE_ARGS, CLI_ENTRY } from '../support/child-node.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ANSI = /\x1b\[/;

const IDS: DemoIds = { pipelineId: 4242 };
/** GitLab's trace id for pipeline 4242 (docs/runner-protocol.md#trace-ids): 0x1092. */
const TRACE_ID = '00000000000000000000000000001092';

// ---------------------------------------------------------------- log replay

t.test('replayChunks: cuts after every section_end line, covers the log exactly, in stamp order', async (t) => {
  const log = buildJobLog('user-sections', { start: new Date('2026-03-01T10:00:00Z'), timestamps: true });
  const chunks = replayChunks(log.bytes);
  t.equal(
    chunks.reduce((n, c) => n + c.bytes, 0),
    log.bytes.length,
    'every byte is uploaded once',
  );
  const markers = log.bytes.toString('latin1').split('section_end:').length - 1;
  t.equal(markers, log.sections.length, 'one end marker per section');
  t.equal(chunks.length, markers + 1, 'one chunk per section end, plus the tail');
  let offset = 0;
  for (const [i, c] of chunks.entries()) {
    offset += c.bytes;
    if (i < chunks.length - 1) {
      const lastLine = log.bytes.subarray(0, offset).toString('latin1').split('\n').at(-2)!;
      t.match(lastLine, /section_end:\d+:/, `chunk ${i} ends right after an end marker`);
      t.equal(log.bytes[offset - 1], 0x0a, `chunk ${i} ends at a line end`);
    }
    if (i > 0) t.ok(c.atNs >= chunks[i - 1]!.atNs, `chunk ${i} is not timed before the one before it`);
  }
  // Stage ends are sent at the stage's end time.
  const stageEnds = log.sections.filter((s) => s.kind === 'stage').map((s) => s.endNs!);
  const times = new Set(chunks.map((c) => c.atNs));
  t.ok(
    stageEnds.every((ns) => times.has(ns)),
    'every stage end is the send time of a chunk',
  );
});

t.test('replayChunks: a log without stamps is sent at the fallback time', async (t) => {
  const log = buildJobLog('success', { start: new Date('2026-03-01T10:00:00Z'), timestamps: false });
  const chunks = replayChunks(log.bytes, 77n);
  t.equal(
    chunks.reduce((n, c) => n + c.bytes, 0),
    log.bytes.length,
  );
  t.ok(chunks.every((c) => c.atNs === 77n));
  t.same(replayChunks(Buffer.alloc(0)), [], 'an empty log is no upload');
});

t.test('lineStampNs: microsecond stamps, and nothing for unstamped or malformed lines', async (t) => {
  t.equal(lineStampNs('2026-03-01T10:00:01.000123Z 00O hello'), 1772359201000123000n);
  t.equal(lineStampNs('hello'), undefined);
  t.equal(lineStampNs('2026-13-45T99:00:01.000123Z 00O bad date'), undefined);
});

// ------------------------------------------------------------- pipeline plan

t.test('planDemoPipeline: N jobs in one trace, distinct ids and parents, compressed but complete durations', async (t) => {
  const plan = planDemoPipeline({ jobs: 8, fail: false, speed: 20, staggerMs: 100 }, IDS);
  t.equal(plan.jobs.length, 8);
  t.equal(plan.traceId, TRACE_ID, "GitLab's trace id for the pipeline");
  t.equal(new Set(plan.jobs.map((j) => j.id)).size, 8, 'distinct job ids');
  t.equal(new Set(plan.jobs.map((j) => j.name)).size, 8, 'distinct job names, also past the templates');
  t.notOk(
    plan.jobs.some((j) => j.scenario === 'script-failure'),
    'nothing fails without --fail',
  );
  for (const job of plan.jobs) {
    t.equal(Object.keys(job.durationsMs).length, 13, `${job.name}: every stage the log builder writes has a duration`);
    t.ok(job.durationsMs.step_script < 34_000 / 10, `${job.name}: the script is compressed`);
  }
  const failing = planDemoPipeline({ jobs: 3, fail: true, speed: 20, staggerMs: 100 }, IDS);
  t.same(
    failing.jobs.map((j) => j.scenario === 'script-failure'),
    [false, true, false],
    '--fail fails exactly one job',
  );
  t.equal(failingJobIndex(1), 0, 'a one-job pipeline fails its only job');
  const single = planDemoPipeline({ jobs: 1, fail: true, speed: 20, staggerMs: 100 }, IDS);
  t.equal(single.jobs[0]!.scenario, 'script-failure');
});

// ------------------------------------------------------------- span progress

function span(
  spanId: string,
  parentSpanId: string,
  name: string,
  attributes: ReceivedSpan['attributes'] = {},
  error = false,
): ReceivedSpan {
  return {
    traceId: TRACE_ID,
    spanId,
    parentSpanId,
    traceState: '',
    name,
    kind: 1,
    startTimeUnixNano: 1_000_000_000n,
    endTimeUnixNano: 1_250_000_000n,
    attributes,
    status: { code: error ? 2 : 0, message: '' },
    flags: 0,
    resource: {},
    scope: { name: 'gitlab-otel', version: '0' },
  };
}

t.test('SpanProgress: sections arriving before their stage are told about with it, parents first', async (t) => {
  const p = new SpanProgress();
  t.same(p.jobStarted(101, 'j1'), []);
  const inner = span('s2', 's1', 'compile.native', { [CI.sectionName]: 'compile.native' });
  const outer = span('s1', 'st', 'build', { [CI.sectionName]: 'build' });
  t.same(p.receive([inner, outer]), [], 'nothing is known about sections whose stage has not arrived');
  t.equal(p.unplaced, 2);
  const events = p.receive([span('st', 'j1', 'step_script', { [CI.stageName]: 'step_script' }, true)]);
  t.same(
    events.map((e) => [e.kind, e.jobId, e.name, e.depth, e.failed]),
    [
      ['stage', 101, 'step_script', 1, true],
      ['section', 101, 'build', 2, false],
      ['section', 101, 'compile.native', 3, false],
    ],
  );
  t.equal(p.unplaced, 0);
  const job = p.receive([span('j1', 'remote-parent', 'job_execution', { [CI.jobId]: 101, [CI.jobStatus]: 'failed' }, true)]);
  t.match(job, [{ kind: 'job', jobId: 101, status: 'failed', failed: true, depth: 0 }]);
});

t.test('SpanProgress: a stage of a job never announced waits; its job span places it', async (t) => {
  const p = new SpanProgress();
  t.same(p.receive([span('a', 'j9', 'get_sources', { [CI.stageName]: 'get_sources' })]), []);
  const events = p.receive([span('j9', 'x', 'job_execution', { [CI.jobId]: 909 })]);
  t.same(
    events.map((e) => [e.kind, e.jobId]),
    [
      ['job', 909],
      ['stage', 909],
    ],
  );
  t.same(p.receive([span('j8', 'x', 'job_execution', {})]), [], 'a job span without a job id is not guessed at');
});

// ------------------------------------------------------------------ narration

t.test('narration: one line per span for small arrivals, one summary line for a burst; colour only when asked', async (t) => {
  const p = new SpanProgress();
  p.jobStarted(101, 'j1');
  const names = new Map([[101, 'test:unit']]);
  const one = p.receive([span('st', 'j1', 'step_script', { [CI.stageName]: 'step_script' }, true)]);
  const stepScript = [span('st', 'j1', 'step_script', { [CI.stageName]: 'step_script' }, true)];
  const lines = arrivalLines(stepScript, one, names, painter(false));
  t.same(lines, ['job 101 (test:unit) stage step_script failed ✗ (250ms)']);
  t.match(arrivalLines(stepScript, one, names, painter(true))[0], ANSI);

  // A burst is counted by what arrived, including sections still waiting for their stage.
  const many = [
    ...Array.from({ length: DETAILED_ARRIVAL_MAX }, (_, i) => span(`x${i}`, 'j1', `stage${i}`, { [CI.stageName]: `stage${i}` })),
    span('sec', 'not-yet', 'build', { [CI.sectionName]: 'build' }),
  ];
  const burst = arrivalLines(many, p.receive(many), names, painter(false));
  t.same(burst, [`collector received ${many.length} spans: 0 job_execution, ${DETAILED_ARRIVAL_MAX} stage, 1 section`]);

  const summary = summaryLines(
    {
      pipelineId: 7,
      jobs: [{ state: 'success' }, { state: 'failed' }],
      spans: 20,
      traces: 1,
      failedSpans: 2,
      dropped: 0,
      runnerCalls: 30,
      runnerErrors: 0,
      wallMs: 1200,
      collectorDown: { downMs: 1000, jobsFinishedWhileDown: 2, spansAfterRecovery: 20 },
      problems: ['something (DEMO_SPANS_DROPPED)'],
    },
    painter(false),
  ).join('\n');
  t.match(summary, /pipeline 7: 2 jobs \(1 succeeded, 1 failed\) · 20 spans in 1 trace \(2 ERROR\) · 0 dropped/);
  t.match(summary, /30 calls to GitLab, every one answered without error/);
  t.match(summary, /away for the first 1\.0s: 2 jobs finished meanwhile/);
  t.match(summary, /problem: something \(DEMO_SPANS_DROPPED\)/);
  t.match(summary, /gitlab-otel runner-proxy --help/);
  t.notMatch(summary, ANSI);
});

// ---------------------------------------------------------------- arguments

t.test('parseDemoArgs: defaults, the options, and usage errors with a stable code', async (t) => {
  t.same(parseDemoArgs([]), { help: false, jobs: 3, fail: false, collectorDownMs: 0, json: false, quick: false });
  t.same(parseDemoArgs(['--jobs', '5', '--fail', '--collector-down', '1.5', '--json', '--quick']), {
    help: false,
    jobs: 5,
    fail: true,
    collectorDownMs: 1500,
    json: true,
    quick: true,
  });
  for (const bad of [
    ['--jobs', '0'],
    ['--jobs', '2.5'],
    ['--jobs', '999'],
    ['--collector-down', '-1'],
    ['--collector-down', 'soon'],
    ['--nope'],
    ['extra'],
  ]) {
    t.throws(() => parseDemoArgs(bad), { code: 'DEMO_USAGE', name: 'DemoUsageError' }, bad.join(' '));
  }
  t.ok(new DemoUsageError('x') instanceof Error);
});

// ------------------------------------------------------------- the whole demo

const QUICK: DemoOptions = { jobs: 2, fail: false, collectorDownMs: 0, json: true, quick: true, color: false, width: 100, ids: IDS };

async function demo(options: Partial<DemoOptions>): Promise<{ result: DemoResult; out: string; err: string }> {
  let out = '';
  let err = '';
  const result = await runDemo({ ...QUICK, ...options }, { out: (s) => void (out += s), err: (s) => void (err += s) });
  return { result, out, err };
}

function flatten(spans: readonly SpanJson[]): SpanJson[] {
  return spans.flatMap((s) => [s, ...flatten(s.children)]);
}

/** What every run must hold: one trace, one top-level job_execution per job, stages under it, all delivered to GitLab's collector. */
function checkStructure(t: Test, result: DemoResult, jobs: number): void {
  t.equal(result.ok, true, `no problems: ${JSON.stringify(result.problems)}`);
  t.same(result.problems, []);
  t.equal(result.traces.length, 1, 'one pipeline, one trace');
  const trace = result.traces[0]!;
  t.equal(trace.traceId, TRACE_ID, 'the trace GitLab named in features.tracing');
  t.equal(result.traceId, TRACE_ID);
  t.equal(result.jobs.length, jobs);
  const roots = trace.spans.filter((s) => s.name === 'job_execution');
  t.equal(roots.length, jobs, 'one job_execution per job, at the top');
  t.equal(trace.spans.length, jobs, 'nothing else at the top');
  for (const job of result.jobs) {
    const root = roots.find((r) => r.attributes[CI.jobId] === job.id);
    t.ok(root, `job ${job.id} has its job_execution`);
    if (!root) continue;
    t.equal(root.spanId, job.jobSpanId, `job ${job.id}: the span id the proxy allocated`);
    t.equal(root.parent, 'none', `job ${job.id}: a top-level span of the pipeline trace (no span_parent_id)`);
    t.equal(root.parentSpanId, '', `job ${job.id}: no parent id`);
    t.equal(root.attributes[CI.jobName], job.name);
    t.equal(root.attributes[CI.pipelineId], IDS.pipelineId);
    const stages = root.children.filter((c) => c.attributes[CI.stageName] !== undefined);
    t.same(
      stages.slice(0, 3).map((s) => s.name),
      ['prepare_executor', 'prepare_script', 'get_sources'],
      `job ${job.id}: the runner's stages, in order`,
    );
    t.ok(
      stages.some((s) => s.name === 'step_script'),
      `job ${job.id}: step_script`,
    );
    t.equal(stages.at(-1)!.name, 'cleanup_file_variables', `job ${job.id}: ends with cleanup`);
    t.ok(
      root.children.every((c) => c.parent === 'present' && c.parentSpanId === root.spanId),
      `job ${job.id}: stages parented`,
    );
    t.ok(
      flatten(root.children).every((s) => s.parent === 'present'),
      `job ${job.id}: every descendant's parent arrived`,
    );
    t.equal(job.spans, 1 + flatten(root.children).length, `job ${job.id}: span count`);
    t.equal(job.finalStatus, 200, `job ${job.id}: final update accepted`);
    t.equal(job.runnerErrors, 0, `job ${job.id}: no runner call failed`);
    t.ok(job.patches >= stages.length, `job ${job.id}: the log went up in pieces, one or more per stage`);
  }
  t.equal(result.counts.spansReceived, trace.spanCount);
  t.equal(result.counts.spansExported, result.counts.spansReceived, 'the collector got exactly what the proxy exported');
  t.equal(result.counts.spansDropped, 0, 'nothing dropped');
  t.equal(result.counts.runnerErrors, 0);
  t.ok(result.counts.runnerCalls > jobs * 3, 'job request, ack, log and final update per job');
  // The proxy has no collector of its own in the demo: the spans reached the one each payload named.
  t.match(result.collector.url, /^http:\/\/127\.0\.0\.1:\d+\/v1\/traces$/, "GitLab's OTLP/HTTP collector URL");
  // The metrics summary comes from what the collector received (docs/metrics.md#demo).
  t.ok(result.metrics.exports >= 1, 'metric exports reached the collector');
  t.equal(result.metrics.job?.count, jobs, 'every job in the received ci.job.duration histogram');
  t.equal(result.metrics.queue?.count, jobs, 'every job in the received queue-time histogram');
  t.ok(
    result.metrics.stages.some((s) => s.stage === 'step_script' && s.count === jobs),
    'step_script of every job in the stage breakdown',
  );
}

t.test('runDemo --json (quick): one JSON document with the trace, jobs and counts, and nothing else on stdout', async (t) => {
  const { result, out, err } = await demo({});
  const doc = JSON.parse(out) as DemoResult;
  t.same(doc, JSON.parse(JSON.stringify(result)), 'stdout is exactly the result');
  checkStructure(t, doc, 2);
  t.same(
    doc.jobs.map((j) => [j.id, j.name, j.state]),
    [
      [101, 'build', 'success'],
      [102, 'test:unit', 'success'],
    ],
  );
  t.equal(doc.counts.errorSpans, 0, 'no ERROR without --fail');
  const unit = flatten(doc.traces[0]!.spans).find((s) => s.name === 'compile.native');
  t.ok(unit, "test:unit's nested user sections arrived");
  t.match(err, /job 101 \(build\) picked up by the runner/, 'progress goes to stderr');
  // Stage lines may be summed up when spans arrive in bursts; job spans are always named.
  t.match(err, /job 101 \(build\) job_execution exported: success/);
  t.match(err, /job 102 \(test:unit\) job_execution exported: success/);
  t.notMatch(err, ANSI);
  // The job token, runner token, repo_url credentials and the secret the job log prints never show.
  for (const secret of [/glcbt-/, /glrt-/, /gitlab-ci-token:/, /s3cr3t-deploy-password/, /64_xZ9qTk2/]) {
    t.notMatch(out, secret, `no ${secret.source} in the JSON`);
    t.notMatch(err, secret, `no ${secret.source} in the progress`);
  }
});

t.test('runDemo --fail: the failing job and its script stage are ERROR spans', async (t) => {
  const { result } = await demo({ jobs: 3, fail: true });
  checkStructure(t, result, 3);
  const failing = result.jobs.find((j) => j.state === 'failed');
  t.ok(failing, 'one job failed');
  t.equal(result.jobs.filter((j) => j.state === 'failed').length, 1);
  const root = result.traces[0]!.spans.find((s) => s.spanId === failing!.jobSpanId)!;
  t.equal(root.status.code, 2, 'job_execution is ERROR');
  t.equal(root.attributes[CI.jobStatus], 'failed');
  t.equal(root.attributes[CI.jobFailureReason], 'script_failure');
  const step = root.children.find((c) => c.name === 'step_script')!;
  t.equal(step.status.code, 2, 'step_script is ERROR');
  t.ok(
    root.children.some((c) => c.name === 'archive_cache_on_failure'),
    'the failure path ran',
  );
  t.equal(result.counts.errorSpans, 2, 'exactly the job and its script stage');
  for (const other of result.jobs.filter((j) => j !== failing)) {
    const r = result.traces[0]!.spans.find((s) => s.spanId === other.jobSpanId)!;
    t.ok(
      flatten([r]).every((s) => s.status.code !== 2),
      `job ${other.id} has no ERROR span`,
    );
  }
});

t.test('runDemo --collector-down 1: every runner call answered, every span delivered once the collector listens', async (t) => {
  const { result, err } = await demo({ collectorDownMs: 1000 });
  checkStructure(t, result, 2);
  t.equal(result.collector.downForMs, 1000);
  t.match(err, /collector is down for the first 1\.0s[\s\S]*collector up on http:\/\/127\.0\.0\.1:\d+/, 'down first, up after');
  t.equal(
    result.collector.jobsFinishedWhileDown,
    result.jobs.filter((j) => j.finishedWhileCollectorDown).length,
    'the count matches the jobs',
  );
});

t.test('runDemo text mode: progress, waterfall and summary on stdout; colour only when asked', async (t) => {
  const plain = await demo({ json: false, jobs: 1 });
  t.equal(plain.err, '', 'nothing on stderr');
  t.notMatch(plain.out, ANSI);
  t.match(plain.out, /picked up by the runner/);
  t.match(plain.out, new RegExp(`trace ${TRACE_ID}`), 'the waterfall');
  t.match(plain.out, /├─ prepare_executor/);
  t.match(plain.out, /^metrics \(what the collector received[^\n]*\n {2}queue time +p50 ≤ /m, 'the metrics summary, queue time first');
  t.match(plain.out, /pipeline 4242: 1 job \(1 succeeded\)/);
  const coloured = await demo({ json: false, jobs: 1, fail: true, color: true });
  t.match(coloured.out, ANSI);
  t.match(coloured.out, /✗/, 'failed spans are marked');
});

// ---------------------------------------------------------------------- CLI

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CHILD_NODE_ARGS, CLI_ENTRY, ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gitlab-otel ${args.join(' ')} did not exit within 60 s`));
    }, 60_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('the CLI: demo --quick --json exits 0 with one JSON document; usage errors exit 2', async (t) => {
  const run = await cli(['demo', '--quick', '--jobs', '2', '--json']);
  t.equal(run.code, 0, 'exit 0');
  const doc = JSON.parse(run.stdout) as DemoResult;
  t.equal(doc.ok, true);
  t.equal(doc.traces.length, 1);
  t.equal(doc.jobs.length, 2);
  t.equal(doc.traces[0]!.spans.filter((s) => s.name === 'job_execution').length, 2);
  const bad = await cli(['demo', '--jobs', 'many']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--jobs must be a whole number.*\(DEMO_USAGE\)/);
  t.equal(bad.stdout, '');
});
