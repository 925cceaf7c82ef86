// The runner simulator (src/lab/runner.ts) against the upstream behaviour it
// follows (docs/simulators.md): decoding a job payload as gitlab-runner's Go
// structs do, talking to the GitLab runner API simulator on loopback.
import t from 'tap';
import { GitLabRunnerApiSimulator } from '../../src/lab/gitlab-runner-api.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import { RunnerSimulator, tracingTypeMismatch } from '../../src/lab/runner.js';

const TOKEN = 'glrt-simulator-test';

t.test("the runner simulator decodes features.tracing as Go decodes it into the runner's struct", async (t) => {
  const tracing = (v: unknown) => ({ id: 1, features: { tracing: v } });
  t.equal(tracingTypeMismatch(tracing({ trace_id: 'a', otel_endpoints: [{ url: 'https://c/v1/traces' }] })), undefined);
  t.equal(tracingTypeMismatch(tracing({ trace_id: 'a', span_parent_id: null, otel_endpoints: null })), undefined, 'null is a zero value');
  t.match(tracingTypeMismatch(tracing({ trace_id: 'a', otel_endpoints: ['https://c/v1/traces'] })), /cannot unmarshal string/);
  t.match(tracingTypeMismatch(tracing({ trace_id: 5 })), /trace_id is not a string/);
  t.equal(tracingTypeMismatch({ id: 1, features: {} }), undefined);

  // Without the proxy, a payload with string endpoints is a job the runner cannot decode.
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken: TOKEN }).start();
  const runner = new RunnerSimulator({ url: gitlab.url, token: TOKEN });
  t.teardown(async () => {
    runner.close();
    await gitlab.stop();
  });
  gitlab.enqueue(makeJobPayload({ id: 51, otelEndpoints: ['https://otel-collector.example/v1/traces'] }));
  await t.rejects(runner.requestJob(), /decoding json payload: cannot unmarshal string/);
});

t.test('runJob: the log goes up in the PATCH sizes asked for, then a final update with state, checksum and size', async (t) => {
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken: TOKEN }).start();
  const runner = new RunnerSimulator({ url: gitlab.url, token: TOKEN, maxPatchBytes: 100 });
  t.teardown(async () => {
    runner.close();
    await gitlab.stop();
  });
  const sim = gitlab.enqueue(makeJobPayload({ id: 52 }));
  const job = await runner.requestJob();
  t.ok(job, 'the runner got the job');
  t.equal(job!.id, 52);
  t.equal(job!.variables.CI_JOB_ID, '52', 'public variables by key');
  t.notOk('CI_JOB_TOKEN' in job!.variables, 'masked, non-public variables are not among them');
  const log = Buffer.from('x'.repeat(250));
  const result = await runner.runJob(job!, { log, state: 'failed', failureReason: 'script_failure', exitCode: 3, patchSizes: [10, 40] });
  t.same(
    sim.trace.map((b) => b.length),
    [10, 40, 100, 100],
    'the sizes asked for, then maxPatchBytes, then the rest',
  );
  t.ok(Buffer.concat(sim.trace).equals(log), 'the log arrives whole, in order');
  t.match(result, { finalStatus: 200, patches: 4 });
  t.equal(sim.state, 'failed');
  t.match(sim.updates.at(-1), {
    state: 'failed',
    failure_reason: 'script_failure',
    exit_code: 3,
    output: { bytesize: 250, checksum: /^crc32:[0-9a-f]{8}$/ },
  });
});
