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
