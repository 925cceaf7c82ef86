// Finding 1 (issue #16): every job on the runner can reach the proxy, so a job
// could PUT a neighbour's final state (`curl -X PUT $PROXY/api/v4/jobs/$((CI_JOB_ID-1))`)
// or PATCH log lines into it. GitLab refuses both (no token), but the proxy used
// to take the refusal as the job's end and close the victim's job_execution
// with the attacker's failure_reason. Now only an exchange presenting the job's
// own token changes its telemetry; after a restart the token is re-learned from
// the first exchange GitLab accepted (docs/security.md#job-tokens).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLab, runLabJob } from '../../src/lab/lab.js';
import { GitLabRunnerApiSimulator } from '../../src/lab/gitlab-runner-api.js';
import { buildJobLog } from '../../src/lab/job-log-builder.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import { RunnerSimulator } from '../../src/lab/runner.js';
import { envDefaults } from '../../src/runner-proxy/config/load.js';
import { validateConfig } from '../../src/runner-proxy/config/schema.js';
import { startRunnerProxy, type RunningProxy } from '../../src/runner-proxy/runtime.js';
import { memoryLogger } from '../support/memory-logger.js';
import { OtlpReceiver } from '../../src/telemetry/receiver.js';
import { freePort } from '../support/runner-proxy-child.js';
import { call, metricValue } from './support.js';

const ESC = '\x1b[0K';
const stringify = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
const injected = (name: string) => `${ESC}section_start:1700000000:${name}\r${ESC}evil\n${ESC}section_end:1700000009:${name}\r${ESC}\n`;

/** What a job container can do with curl: no token, or its own job's token, against the victim's id. */
async function attack(proxyUrl: string, victimId: number, ownToken?: string): Promise<number[]> {
  const statuses: number[] = [];
  const auth: Record<string, string> = ownToken ? { 'JOB-TOKEN': ownToken } : {};
  for (const body of [
    { state: 'failed', failure_reason: 'attacker_reason', exit_code: 66 },
    { token: ownToken, state: 'failed', failure_reason: 'attacker_reason' },
  ]) {
    const r = await call(proxyUrl, 'PUT', `/api/v4/jobs/${victimId}`, {
      headers: { 'Content-Type': 'application/json', ...auth },
      body: JSON.stringify(body),
    });
    statuses.push(r.status);
  }
  const r = await call(proxyUrl, 'PATCH', `/api/v4/jobs/${victimId}/trace`, {
    headers: { 'Content-Type': 'text/plain', 'Content-Range': '0-99', ...auth },
    body: injected('attacker_stage'),
  });
  statuses.push(r.status);
  return statuses;
}

t.test("a neighbour job's forged PUT and PATCH leave the victim's span untouched; the real runner still closes it", async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  // The attacker is a job of its own on the same runner, with a token of its own.
  lab.gitlab.enqueue(makeJobPayload({ id: 5002 }));
  const attacker = await lab.runner().requestJob();
  t.ok(attacker, 'the attacker job is running');
  const statuses: number[] = [];
  const job = await runLabJob(lab, lab.runner(), {
    payload: { id: 5001 },
    scenario: 'success',
    patchSizes: [300, 300, 300],
    beforePatch: async (i) => {
      if (i !== 1) return;
      statuses.push(...(await attack(lab.proxyUrl, 5001)), ...(await attack(lab.proxyUrl, 5001, attacker!.token)));
    },
  });
  t.same(statuses, [403, 403, 403, 403, 403, 403], 'GitLab refused every forged exchange');
  t.equal(job.result.finalStatus, 200, "the runner's own final update went through");
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution' && x.attributes['ci.job.id'] === 5001), 10_000);
  await lab.proxy.pipeline.flush(2000);
  const jobSpans = lab.receiver!.spans.filter((s) => s.name === 'job_execution' && s.attributes['ci.job.id'] === 5001);
  t.equal(jobSpans.length, 1, 'one job span');
  t.match(jobSpans[0]!.attributes, { 'ci.job.status': 'success' });
  t.equal(jobSpans[0]!.status.code, 0, 'not ERROR');
  t.notOk(stringify(lab.receiver!.spans).includes('attacker'), 'no attacker reason, exit code or section anywhere');
  t.ok(
    lab.receiver!.spans.some((s) => s.name === 'step_script'),
    "the runner's own stages are there",
  );
  const metrics = await lab.proxy.registry.metrics();
  t.equal(metricValue(metrics, 'gitlab_otel_unauthenticated_exchanges_total', { route: 'job_update', reason: 'token_mismatch' }), 4);
  t.equal(metricValue(metrics, 'gitlab_otel_unauthenticated_exchanges_total', { route: 'trace_patch', reason: 'token_mismatch' }), 2);
  t.notOk(metrics.includes(job.received.token), 'no token in the metrics');
});

t.test('after a restart: forged exchanges before and after the token is re-learned change nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-forged-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken: 'glrt-forged-restart' }).start();
  t.teardown(() => gitlab.stop());
  const receiver = await new OtlpReceiver({}).start();
  t.teardown(() => receiver.stop());
  const port = await freePort();
  const config = validateConfig(
    {
      listen: `127.0.0.1:${port}`,
      admin: null,
      upstream: { url: gitlab.url },
      spool: { dir: join(dir, 'spool') },
      endpoints: [{ name: 'lab', url: receiver.url, compression: 'none', queue: { batch_delay: '20ms' } }],
    },
    envDefaults({}).defaults,
  );
  const log = memoryLogger();
  let proxy: RunningProxy = await startRunnerProxy(config, { log });
  t.teardown(() => proxy.stop());
  const proxyUrl = `http://127.0.0.1:${port}`;
  const runner = new RunnerSimulator({ url: proxyUrl, token: 'glrt-forged-restart' });
  t.teardown(() => runner.close());
  gitlab.enqueue(makeJobPayload({ id: 5101 }));
  const received = await runner.requestJob();
  const script = buildJobLog('success', { start: new Date(), timestamps: true });
  const statuses: number[] = [];
  const result = await runner.runJob(received!, {
    log: script.bytes,
    state: 'success',
    patchSizes: [300, 300, 300],
    beforePatch: async (i) => {
      if (i === 1) {
        await proxy.stop();
        proxy = await startRunnerProxy(config, { log });
        // Before the runner's next exchange: the restarted proxy does not know the token yet.
        statuses.push(...(await attack(proxyUrl, 5101)));
      }
      if (i === 2) statuses.push(...(await attack(proxyUrl, 5101)));
    },
  });
  t.equal(result.finalStatus, 200);
  t.same(statuses, [403, 403, 403, 403, 403, 403]);
  t.ok(
    log.lines.some((l) => l.msg === 'job token re-learned from an exchange GitLab accepted'),
    'the token was re-learned from the runner',
  );
  await receiver.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  const jobSpan = receiver.spans.find((s) => s.name === 'job_execution')!;
  t.match(jobSpan.attributes, { 'ci.job.id': 5101, 'ci.job.status': 'success' });
  t.notOk(stringify(receiver.spans).includes('attacker'));
  const metrics = await proxy.registry.metrics();
  t.equal(
    metricValue(metrics, 'gitlab_otel_unauthenticated_exchanges_total', { route: 'job_update', reason: 'token_unknown' }),
    2,
    'refused before re-learning',
  );
  t.equal(
    metricValue(metrics, 'gitlab_otel_unauthenticated_exchanges_total', { route: 'job_update', reason: 'token_mismatch' }),
    2,
    'and after',
  );
  t.notOk(JSON.stringify(log.lines).includes(received!.token), 'the token is in no log line');
});
