// `gitlab-otel demo`: the whole demo in its quick form through runDemo and
// the CLI, asserting on the structure of what it reports, never on timings.
// Its pure parts have their own files beside this one (log-replay, pipeline-plan,
// span-progress, narration, command).
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CI } from '../../src/telemetry/attributes.js';
import type { SpanJson } from '../../src/inspect/trace-json.js';
import type { DemoIds } from '../../src/demo/pipeline-plan.js';
import { runDemo, type DemoOptions, type DemoResult } from '../../src/demo/demo.js';
import { CHILD_NODE_ARGS, CLI_ENTRY } from '../support/child-node.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ANSI = /\x1b\[/;

const IDS: DemoIds = { pipelineId: 4242 };
/** GitLab's trace id for pipeline 4242 (docs/runner-protocol.md#trace-ids): 0x1092. */
const TRACE_ID = '00000000000000000000000000001092';

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
