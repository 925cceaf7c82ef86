// Telemetry beside the job: secrets never leak, a dead collector costs the
// job nothing, the fallback and keep modes, the admin listener.
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { memoryLogger } from '../support/memory-logger.js';
import { startLab, runLabJob } from '../../src/lab/lab.js';
import { gitlabTraceId, pipelineRootSpanId } from '../../src/telemetry/pipeline-ids.js';
import { get } from '../support/http-get.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

/** Every file under `dir`, concatenated (journal and spool records are JSON inside a binary frame). */
function filesUnder(dir: string): string {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name), 'latin1'))
    .join('\n');
}

const stringify = (v: unknown): string => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));

// Both telemetry threads (docs/architecture.md#telemetry-thread): with `worker`, the job crosses to the worker as a
// DecidedJob with its token's digest, bodies as transferred copies, log lines posted back.
for (const thread of ['main', 'worker'] as const)
  t.test(
    `secrets canary (telemetry.thread: ${thread}): tokens, variable values, credentials and repo_url never reach spans, logs, the journal or the spool`,
    async (t) => {
      const onDisk: string[] = [];
      const log = memoryLogger();
      const spool = mkdtempSync(join(tmpdir(), 'gitlab-otel-canary-'));
      t.teardown(() => rmSync(spool, { recursive: true, force: true }));
      const lab = await startLab({ log, proxyConfig: { log_level: 'debug', spool: { dir: spool }, telemetry: { thread } } });
      t.teardown(() => lab.stop());
      const canaries = {
        jobToken: 'glcbt-CANARYjobtoken0001',
        masked: 'CANARY-masked-value-0002',
        publicUserValue: 'CANARY-public-user-value-0003',
      };
      const job = await runLabJob(lab, lab.runner(), {
        payload: {
          id: 3001,
          token: canaries.jobToken,
          contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT },
          variables: [
            { key: 'DEPLOY_PASSWORD', value: canaries.masked, masked: true },
            { key: 'SOME_SETTING', value: canaries.publicUserValue, public: true },
          ],
        },
        scenario: 'user-sections',
        log: { masked: [canaries.masked] },
        // Mid-job the journal holds the job's record (docs/security.md#job-tokens: the token is not in it).
        beforePatch: () => {
          onDisk.push(filesUnder(spool));
        },
      });
      await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'));
      await lab.proxy.pipeline.flush(2000);
      const payload = job.sim.payload as { git_info: { repo_url: string }; credentials: { password: string }[] };
      const secrets = [
        lab.runnerToken,
        canaries.jobToken,
        canaries.masked,
        canaries.publicUserValue,
        payload.git_info.repo_url,
        payload.credentials[0]!.password,
        ...job.log.secrets,
      ];
      onDisk.push(filesUnder(spool));
      const disk = onDisk.join('\n');
      t.ok(disk.includes('3001'), 'the journal and spool were written');
      const exported = stringify(lab.receiver!.spans);
      const logged = stringify(log.lines);
      // What /metrics serves: with `worker`, both threads' registries and the CI/CD text.
      const metrics = await lab.proxy.metricsText();
      t.ok(metrics.includes('gitlab_otel_jobs_total'), 'the metrics were read');
      t.ok(lab.receiver!.spans.length > 5, 'spans were exported');
      for (const secret of secrets) {
        t.notOk(exported.includes(secret), `not in exported spans or resources: ${secret.slice(0, 12)}…`);
        t.notOk(logged.includes(secret), `not in the proxy's log: ${secret.slice(0, 12)}…`);
        t.notOk(metrics.includes(secret), `not in metrics: ${secret.slice(0, 12)}…`);
        t.notOk(disk.includes(secret), `not in the journal or the spool: ${secret.slice(0, 12)}…`);
      }
    },
  );

t.test('collector down: the job runs to completion through the proxy, and nothing errors for the runner', async (t) => {
  const lab = await startLab({
    receiver: { behaviour: () => ({ kind: 'error', code: status.UNAVAILABLE, details: 'collector down' }) },
  });
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  const job = await runLabJob(lab, runner, {
    payload: { id: 3101, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
    patchSizes: [512, 512, 512],
  });
  t.equal(job.result.finalStatus, 200);
  t.ok(
    runner.sent.every((e) => e.status < 400),
    'every runner call succeeded',
  );
  t.same(lab.gitlab.traceOf(3101), job.log.bytes, 'GitLab has the whole log');
  await lab.receiver!.waitFor(() => lab.receiver!.calls.length > 0);
  t.equal(lab.receiver!.spans.length, 0, 'nothing was accepted');
});

t.test('collector unreachable (nothing listening): same', async (t) => {
  const lab = await startLab({
    receiver: false,
    proxyConfig: { endpoints: [{ name: 'void', url: 'http://127.0.0.1:9', queue: { batch_delay: '10ms' } }] },
  });
  t.teardown(() => lab.stop());
  const job = await runLabJob(lab, lab.runner(), {
    payload: { id: 3102, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
  });
  t.equal(job.result.finalStatus, 200);
});

t.test('fallback variable: pipeline-derived trace id and parent, only with payload-or-variable', async (t) => {
  const lab = await startLab({ proxyConfig: { telemetry: { negotiation: 'payload-or-variable' } } });
  t.teardown(() => lab.stop());
  const server = 'https://gitlab.example.com';
  await runLabJob(lab, lab.runner(), { payload: { id: 3201, pipelineId: 777, serverUrl: server, contract: { kind: 'variable' } } });
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'));
  const span = lab.receiver!.spans.find((s) => s.name === 'job_execution')!;
  t.equal(span.traceId, gitlabTraceId(777), "GitLab's trace id for the pipeline (telemetry.trace_ids: gitlab)");
  t.equal(span.parentSpanId, pipelineRootSpanId(server, 777));
  t.equal(span.attributes['ci.telemetry.contract'], 'variable');

  const strict = await startLab();
  t.teardown(() => strict.stop());
  await runLabJob(strict, strict.runner(), { payload: { id: 3202, pipelineId: 777, contract: { kind: 'variable' } } });
  await strict.proxy.pipeline.flush(2000);
  t.equal(strict.receiver!.spans.length, 0, 'policy payload ignores the variable');
});

t.test('native_runner_span: keep leaves features.tracing for the runner', async (t) => {
  const lab = await startLab({ proxyConfig: { telemetry: { native_runner_span: 'keep' } } });
  t.teardown(() => lab.stop());
  const job = await runLabJob(lab, lab.runner(), {
    payload: { id: 3301, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
  });
  t.ok((job.received.payload.features as { tracing?: unknown }).tracing, 'the runner still gets features.tracing');
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'));
});

t.test('final update answered 202 then 200: the job ends at the accepted update', async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  const job = await runLabJob(lab, lab.runner(), {
    payload: { id: 3401, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
    finalAnswers: [202, 202],
  });
  t.equal(job.result.finalStatus, 200);
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'));
  t.equal(lab.receiver!.spans.filter((s) => s.name === 'job_execution').length, 1, 'exactly one job span');
});

t.test('412 on the final update: the log is re-uploaded from 0 and no stage span is duplicated', async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  const job = await runLabJob(lab, lab.runner(), {
    payload: { id: 3501, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
    finalAnswers: [412],
  });
  t.equal(job.result.finalStatus, 200);
  t.same(lab.gitlab.traceOf(3501), job.log.bytes);
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'));
  await lab.proxy.pipeline.flush(2000);
  const names = lab.receiver!.spans.map((s) => `${s.name}#${String(s.attributes['ci.stage.attempt'] ?? 1)}`);
  t.equal(new Set(names).size, names.length, 'no span exported twice');
});

t.test('canceled job (Job-Status: canceled): ERROR with cancellation result', async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  await runLabJob(lab, lab.runner(), {
    payload: { id: 3601, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
    scenario: 'script-failure',
    jobStatus: 'canceling',
  });
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'));
  const span = lab.receiver!.spans.find((s) => s.name === 'job_execution')!;
  t.equal(span.status.code, 2);
  t.match(span.attributes, { 'ci.job.status': 'canceled', 'cicd.pipeline.task.run.result': 'cancellation' });
});

t.test('admin listener: /healthz and /metrics', async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  await runLabJob(lab, lab.runner(), { payload: { id: 3701, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } } });
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'));
  const base = `http://127.0.0.1:${lab.proxy.adminAddress!.port}`;
  const health = await get(`${base}/healthz`);
  t.equal(health.status, 200);
  t.match(JSON.parse(health.body), { status: 'ok', jobs_active: 0, endpoints: [{ name: 'lab' }] });
  const metrics = await get(`${base}/metrics`);
  t.equal(metrics.status, 200);
  t.match(metrics.body, /gitlab_otel_proxy_requests_total\{route="job_request",status="201"\} 1/);
  t.match(metrics.body, /gitlab_otel_proxy_requests_total\{route="trace_patch",status="202"\}/);
  t.match(metrics.body, /gitlab_otel_upstream_latency_seconds_bucket/);
  t.match(metrics.body, /gitlab_otel_jobs_active 0/);
  t.match(metrics.body, /gitlab_otel_spans_exported_total\{endpoint="lab"\}/);
  t.equal((await get(`${base}/nope`)).status, 404);
});
