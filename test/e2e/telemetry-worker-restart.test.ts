// telemetry.thread: worker through the real CLI (docs/architecture.md#telemetry-thread): SIGTERM
// mid-job drains forwarding, then the worker journals the job, flushes and exits within
// shutdown.flush_timeout, and the process exits 0; started again on the same spool, the new
// worker resumes the job from the journal and its remaining spans arrive, each once.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GitLabRunnerApiSimulator } from '../../src/lab/gitlab-runner-api.js';
import { buildJobLog } from '../../src/lab/job-log-builder.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import { RunnerSimulator } from '../../src/lab/runner.js';
import { OtlpReceiver } from '../../src/telemetry/receiver.js';
import { traceparent } from '../../src/telemetry/spans.js';
import { eventually } from '../support/export.js';
import { exitOf, freePort, journalledOffset, startProxyChild, writeConfig, type ProxyChild } from '../support/runner-proxy-child.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

t.test('worker thread, SIGTERM mid-job: exit 0 with the job journalled; after a restart the job completes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-worker-restart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const runnerToken = `glrt-${randomBytes(12).toString('hex')}`;
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken }).start();
  t.teardown(() => gitlab.stop());
  const collector = await new OtlpReceiver().start();
  t.teardown(() => collector.stop());
  const port = await freePort();
  const spool = join(dir, 'spool');
  const config = writeConfig(dir, 'proxy.yml', {
    listen: `127.0.0.1:${port}`,
    admin: '127.0.0.1:0',
    upstream: { url: gitlab.url },
    endpoints: [{ name: 'collector', url: collector.url, compression: 'none', queue: { batch_delay: '20ms' } }],
    spool: { dir: spool },
    telemetry: { thread: 'worker' },
    shutdown: { grace: '5s', flush_timeout: '2s' },
  });
  const first = await startProxyChild(config);
  t.teardown(() => void first.child.kill('SIGKILL'));
  t.match(
    first.lines.find((l) => l.msg === 'runner proxy listening'),
    { telemetry_thread: 'worker' },
  );
  let second: ProxyChild | undefined;
  t.teardown(() => void second?.child.kill('SIGKILL'));

  gitlab.enqueue(makeJobPayload({ id: 7501, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } }));
  const log = buildJobLog('success', { start: new Date(), timestamps: true });
  const runner = new RunnerSimulator({ url: `http://127.0.0.1:${port}`, token: runnerToken, callTimeoutMs: 20_000 });
  t.teardown(() => runner.close());
  const received = await runner.requestJob();
  if (!received) throw new Error('the runner got no job');
  const cut = log.bytes.indexOf(':step_script') + 40;
  const rest = log.bytes.length - cut;
  let before = 0;
  const result = await runner.runJob(received, {
    log: log.bytes,
    state: log.outcome.status,
    patchSizes: [cut, Math.ceil(rest / 2), Math.ceil(rest / 2)],
    beforePatch: async (i) => {
      if (i !== 1) return;
      // The worker journals after each exchange it handled.
      await eventually(() => journalledOffset(spool, 7501) === cut, 10_000, 'the worker journalled the first PATCH');
      first.child.kill('SIGTERM');
      t.equal((await exitOf(first, 20_000)).code, 0, 'exit 0 after SIGTERM');
      t.ok(
        first.lines.some((l) => l.msg === 'jobs in progress journalled for the next start' && l.jobs === 1),
        'the worker journalled the running job (its log line reached stderr through the forwarding thread)',
      );
      t.notOk(
        first.lines.some((l) => l.code === 'TELEMETRY_WORKER_STOP_LATE'),
        'the worker stopped within the flush bound',
      );
      before = collector.spans.length;
      t.ok(before > 0, `stages finished before the stop were flushed before the exit (${before})`);
      t.notOk(
        collector.spans.some((s) => s.name === 'job_execution'),
        'the open job was not closed early',
      );
      second = await startProxyChild(config);
      t.ok(
        second.lines.some((l) => l.msg === 'job telemetry resumed after restart' && l.job_id === 7501),
        'the new worker resumed the job from the journal',
      );
    },
  });
  t.equal(result.finalStatus, 200, 'the job finished through the restarted proxy');
  t.same(gitlab.traceOf(7501), log.bytes, 'GitLab has the whole log');
  await collector.waitFor((spans) => spans.some((s) => s.name === 'job_execution'), 15_000);
  second!.child.kill('SIGTERM');
  t.equal((await exitOf(second!, 20_000)).code, 0, 'the restarted proxy exits 0 too');
  const spans = collector.spans.filter((s) => s.traceId === TRACE);
  const distinct = new Set(spans.map((s) => s.spanId));
  t.equal(distinct.size, spans.length, 'no span twice');
  t.equal(spans.length, 1 + log.sections.length, 'the job span and every section span, across the restart');
  const job = spans.find((s) => s.name === 'job_execution')!;
  t.equal(received.variables.TRACEPARENT, traceparent(TRACE, job.spanId), 'with the span id the runner was handed');
  t.equal(job.parentSpanId, PARENT);
  t.equal(journalledOffset(spool, 7501), undefined, 'the finished job left the journal');
});
