// The real CLI as a child process, stopped in the middle of a job and started
// again on the same port with the same spool: kill -9 (spans queued behind a
// dead collector, a stage and two sections open) and SIGTERM (exit 0). Either
// way the job's spans all arrive, once, with the ids the runner was given.
import t, { type Test } from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { GitLabRunnerApiSimulator } from '../../src/lab/gitlab-runner-api.js';
import { buildJobLog, type BuiltJobLog, type JobLogScenario } from '../../src/lab/job-log-builder.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import { OtlpReceiver, type ReceivedSpan } from '../../src/telemetry/receiver.js';
import { RunnerSimulator, type ReceivedJob } from '../../src/lab/runner.js';
import { traceparent } from '../../src/telemetry/spans.js';
import { JobJournal } from '../../src/runner-proxy/job/journal.js';
import { startLab } from '../../src/lab/lab.js';
import { memoryLogger } from '../support/memory-logger.js';
import { eventually } from '../support/export.js';
import { appendRawPut, PARENT, sampleRecord, TRACE } from '../support/journal-records.js';
import {
  exitOf,
  freePort,
  journalRecord,
  journalledOffset,
  startProxyChild,
  writeConfig,
  type ProxyChild,
} from '../support/runner-proxy-child.js';

interface Setup {
  dir: string;
  port: number;
  gitlab: GitLabRunnerApiSimulator;
  runnerToken: string;
  config: (collectorUrl: string) => string;
}

async function setup(t: Test): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-restart-'));
  const runnerToken = `glrt-${randomBytes(12).toString('hex')}`;
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken }).start();
  t.teardown(() => gitlab.stop());
  const port = await freePort();
  const config = (collectorUrl: string): string =>
    writeConfig(dir, 'proxy.yml', {
      listen: `127.0.0.1:${port}`,
      admin: '127.0.0.1:0',
      upstream: { url: gitlab.url },
      endpoints: [
        {
          name: 'collector',
          url: collectorUrl,
          compression: 'none',
          queue: { batch_delay: '20ms' },
          retry: { initial_backoff: '50ms', max_backoff: '300ms' },
        },
      ],
      spool: { dir: join(dir, 'spool') },
      shutdown: { grace: '5s', flush_timeout: '2s' },
      log_level: 'info',
    });
  return { dir, port, gitlab, runnerToken, config };
}

/** Cuts the log so the first PATCH ends inside `marker`'s section (a stage and sections open across the stop). */
function patchesCuttingInside(log: BuiltJobLog, marker: string): number[] {
  const cut = log.bytes.indexOf(marker) + 40;
  const rest = log.bytes.length - cut;
  const third = Math.ceil(rest / 3);
  return [cut, third, third, third];
}

function stageKey(s: ReceivedSpan): string {
  return s.name === 'job_execution' ? s.name : `${s.name}#${String(s.attributes['ci.stage.attempt'] ?? 1)}`;
}

/** The whole job arrived: every span once, with the parentage, ids and times the runner and the log say. */
function assertJobComplete(t: Test, spans: ReceivedSpan[], log: BuiltJobLog, received: ReceivedJob): void {
  const mine = spans.filter((s) => s.traceId === TRACE);
  const want = ['job_execution', ...log.sections.map((s) => `${s.name}#${s.attempt}`)].sort();
  const distinct = [...new Map(mine.map((s) => [s.spanId, s])).values()];
  t.same(distinct.map(stageKey).sort(), want, 'every stage and section span arrived: none lost, none made up');
  // The spool replays at most the one batch that was in flight at the stop. Here
  // the collector had accepted nothing before the stop (down, or the batch was
  // acknowledged before a graceful exit), so not even that batch may repeat.
  t.equal(mine.length - distinct.length, 0, 'no span delivered twice (the one-in-flight-batch allowance is not needed here)');

  const job = distinct.find((s) => s.name === 'job_execution');
  t.ok(job, 'job_execution arrived');
  if (!job) return;
  t.equal(job.parentSpanId, PARENT, "job_execution is a child of GitLab's parent span");
  t.equal(received.variables.TRACEPARENT, traceparent(TRACE, job.spanId), 'job_execution has the span id the runner got in TRACEPARENT');
  t.equal(job.startTimeUnixNano, log.firstTimestamp, 'job_execution starts at the first log stamp (journalled before the stop)');
  t.match(job.attributes, { 'ci.job.status': log.outcome.status, 'ci.log.bytes': log.bytes.length });

  const byName = new Map(distinct.map((s) => [stageKey(s), s]));
  for (const expected of log.sections) {
    const span = byName.get(`${expected.name}#${expected.attempt}`);
    if (!span) continue;
    const parent: ReceivedSpan | undefined = expected.kind === 'stage' ? job : distinct.find((x) => x.name === expected.parent);
    t.equal(span.parentSpanId, parent?.spanId, `${expected.name}: parent ${expected.kind === 'stage' ? 'job_execution' : expected.parent}`);
    t.equal(span.startTimeUnixNano, expected.startNs, `${expected.name}: start`);
    t.equal(span.endTimeUnixNano, expected.endNs, `${expected.name}: end`);
  }
}

interface JobRun {
  log: BuiltJobLog;
  received: ReceivedJob;
  runner: RunnerSimulator;
  /** Runs the job to its final update; `atStop` runs before the PATCH after the first one. */
  run(atStop: () => Promise<void>): Promise<number>;
}

async function queueJob(s: Setup, id: number, scenario: JobLogScenario, marker: string): Promise<JobRun> {
  const payload = makeJobPayload({ id, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } });
  s.gitlab.enqueue(payload);
  const log = buildJobLog(scenario, { start: new Date(), timestamps: true });
  const runner = new RunnerSimulator({ url: `http://127.0.0.1:${s.port}`, token: s.runnerToken, callTimeoutMs: 20_000 });
  const received = await runner.requestJob();
  if (!received) throw new Error('the runner got no job');
  return {
    log,
    received,
    runner,
    async run(atStop) {
      const result = await runner.runJob(received, {
        log: log.bytes,
        state: log.outcome.status,
        failureReason: log.outcome.failureReason,
        exitCode: log.outcome.exitCode,
        patchSizes: patchesCuttingInside(log, marker),
        beforePatch: async (i) => {
          if (i === 1) await atStop();
        },
      });
      runner.close();
      return result.finalStatus;
    },
  };
}

/** The journal has the job as it stood after the first PATCH. */
async function journalled(s: Setup, id: number, offset: number): Promise<Record<string, unknown>> {
  const spool = join(s.dir, 'spool');
  await eventually(() => journalledOffset(spool, id) === offset, 10_000, `journal record of job ${id} at offset ${offset}`);
  return journalRecord(spool, id)!;
}

t.test('kill -9 mid-job with spans queued: after a restart the spool is delivered and the job completed, each span once', async (t) => {
  const s = await setup(t);
  const down = await new OtlpReceiver({
    behaviour: () => ({ kind: 'error', code: status.UNAVAILABLE, details: 'collector down' }),
  }).start();
  let up: OtlpReceiver | undefined;
  let second: ProxyChild | undefined;
  t.teardown(async () => {
    await down.stop();
    await up?.stop();
  });
  const first = await startProxyChild(s.config(down.url));
  t.teardown(() => void first.child.kill('SIGKILL'));
  const job = await queueJob(s, 7001, 'user-sections', ':compile.native');

  const finalStatus = await job.run(async () => {
    const record = await journalled(s, 7001, job.log.bytes.indexOf(':compile.native') + 40);
    const open = record.log as { spans: { stage?: { name: string }; sections: { name: string }[] } };
    t.equal(open.spans.stage?.name, 'step_script', 'journalled: step_script open');
    t.same(
      open.spans.sections.map((x) => x.name),
      ['build', 'compile.native'],
      'journalled: two nested sections open',
    );
    t.notOk(JSON.stringify(record).includes(job.received.token), 'the job token is not in the journal');
    await eventually(() => down.calls.length > 0, 10_000, 'an export attempt against the dead collector');

    first.child.kill('SIGKILL');
    t.equal((await exitOf(first, 10_000)).signal, 'SIGKILL');
    await down.stop();
    second = await startProxyChild(s.config(down.url));
    t.teardown(() => void second?.child.kill('SIGKILL'));
    t.ok(
      second.lines.some((l) => l.msg === 'job telemetry resumed after restart' && l.job_id === 7001),
      'the restarted proxy resumed the job',
    );
    up = await new OtlpReceiver({ port: down.port }).start();
  });
  t.equal(finalStatus, 200, 'the job finished normally through the restarted proxy');
  t.same(Buffer.concat(s.gitlab.jobs.get(7001)!.trace), job.log.bytes, 'GitLab has the whole log');

  await up!.waitFor((spans) => spans.some((x) => x.name === 'job_execution'), 15_000);
  // A graceful stop delivers what is still queued and says so with exit 0.
  second!.child.kill('SIGTERM');
  t.equal((await exitOf(second!, 20_000)).code, 0, 'the restarted proxy exits 0 on SIGTERM');
  t.ok(
    second!.lines.some((l) => l.msg === 'spool_replayed'),
    'spans spooled before the kill were replayed',
  );
  assertJobComplete(t, up!.spans, job.log, job.received);
  t.equal(journalRecord(join(s.dir, 'spool'), 7001), undefined, 'the finished job left the journal');
});

t.test('SIGTERM mid-job: exit 0, the job is journalled, and after a restart its remaining spans arrive', async (t) => {
  const s = await setup(t);
  const collector = await new OtlpReceiver().start();
  t.teardown(() => collector.stop());
  let second: ProxyChild | undefined;
  const first = await startProxyChild(s.config(collector.url));
  t.teardown(() => void first.child.kill('SIGKILL'));
  const job = await queueJob(s, 7101, 'success', ':step_script');

  let before = 0;
  const finalStatus = await job.run(async () => {
    await journalled(s, 7101, job.log.bytes.indexOf(':step_script') + 40);
    first.child.kill('SIGTERM');
    const exit = await exitOf(first, 20_000);
    t.equal(exit.code, 0, 'exit code 0 after SIGTERM');
    t.ok(
      first.lines.some((l) => l.msg === 'jobs in progress journalled for the next start' && l.jobs === 1),
      'the running job was journalled, not abandoned',
    );
    before = collector.spans.length;
    t.ok(before > 0, `stages finished before the stop were delivered before exiting (${before})`);
    t.notOk(
      collector.spans.some((x) => x.name === 'job_execution' || x.name === 'step_script'),
      'the open job and stage were not closed early',
    );
    second = await startProxyChild(s.config(collector.url));
    t.teardown(() => void second?.child.kill('SIGKILL'));
  });
  t.equal(finalStatus, 200);
  await collector.waitFor((spans) => spans.some((x) => x.name === 'job_execution'), 15_000);
  second!.child.kill('SIGTERM');
  t.equal((await exitOf(second!, 20_000)).code, 0, 'the restarted proxy exits 0 too');
  assertJobComplete(t, collector.spans, job.log, job.received);
});

t.test('a journal left by an earlier process: usable jobs resume and finish, unusable records are dropped with a warning', async (t) => {
  const spool = join(mkdtempSync(join(tmpdir(), 'gitlab-otel-journal-')), 'spool');
  const earlier = JobJournal.open(join(spool, 'journal'));
  earlier.put('8002', sampleRecord({ payloadEndpoints: [] }));
  earlier.close();
  appendRawPut(join(spool, 'journal'), '8001', { v: 1, job: { jobId: 8001 }, traceId: 'not hex' });

  const log = memoryLogger();
  const lab = await startLab({ log, proxyConfig: { spool: { dir: spool } } });
  t.teardown(() => lab.stop());
  t.ok(
    log.lines.some((l) => l.level === 'warn' && l.fields?.code === 'JOURNAL_RECORD_INVALID' && l.fields.job === '8001'),
    'the unusable record is reported by code',
  );
  t.equal(lab.proxy.tracker.activeJobs, 1, 'the usable job is tracked again');
  t.same(lab.proxy.tracker.jobContext(8002), { traceId: TRACE, spanId: 'a1a2a3a4a5a6a7a8', sampled: true });

  // The runner carries on with the job it already had: no new job request.
  const payload = makeJobPayload({ id: 8002, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } });
  lab.gitlab.enqueue(payload);
  const jobLog = buildJobLog('success', { start: new Date(), timestamps: true });
  const runner = lab.runner();
  const received: ReceivedJob = { payload, id: 8002, token: payload.token as string, variables: {} };
  const result = await runner.runJob(received, { log: jobLog.bytes, state: 'success', patchSizes: [1000, 1000, 1000] });
  t.equal(result.finalStatus, 200);
  await lab.receiver!.waitForSpans(1 + jobLog.sections.length, 10_000);
  await lab.proxy.pipeline.flush(2000);
  const job = lab.receiver!.spans.find((s) => s.name === 'job_execution')!;
  t.match(job, { traceId: TRACE, spanId: 'a1a2a3a4a5a6a7a8', parentSpanId: PARENT }, 'the journalled ids');
  t.equal(lab.receiver!.spans.length, 1 + jobLog.sections.length, 'every stage of the resumed job');
  t.ok(lab.receiver!.spans.every((s) => s.traceId === TRACE));
  t.equal(lab.proxy.tracker.activeJobs, 0);
  t.same(lab.proxy.journal?.jobs(), [], 'the journal is empty again');
});

t.test('without a spool, stopping closes the jobs in progress as abandoned (nothing would finish them later)', async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  const payload = makeJobPayload({ id: 8101, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } });
  lab.gitlab.enqueue(payload);
  const runner = lab.runner();
  const received = await runner.requestJob();
  t.ok(received);
  const jobLog = buildJobLog('success', { start: new Date(), timestamps: true });
  // Run only the first part of the job: stop the proxy before the second PATCH, then let the runner give up.
  const run = runner
    .runJob(received!, {
      log: jobLog.bytes,
      state: 'success',
      patchSizes: [1500, 1500],
      beforePatch: async (i) => {
        if (i === 1) {
          await lab.proxy.stop();
          throw new Error('runner stops here');
        }
      },
    })
    .catch((err: Error) => err.message);
  t.equal(await run, 'runner stops here');
  const job = lab.receiver!.spans.find((s) => s.name === 'job_execution');
  t.ok(job, 'job_execution was exported during the stop');
  t.match(job?.attributes, { 'ci.job.status': 'unknown', 'error.type': 'abandoned' }, 'closed as abandoned');
  t.equal(received!.variables.TRACEPARENT, traceparent(TRACE, job?.spanId ?? ''), 'the span the runner was told about');
});
