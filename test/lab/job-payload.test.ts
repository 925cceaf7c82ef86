// The simulated job payload (src/lab/job-payload.ts, docs/simulators.md#job-payloads):
// GitLab's 201 body with secrets where GitLab puts them, and each telemetry
// contract shaped as GitLab sends it (docs/runner-protocol.md#job-telemetry). Pure.
import t from 'tap';
import { jobToken, makeJobPayload, railsJobRunningSpanId } from '../../src/lab/job-payload.js';

interface Variable {
  key: string;
  value: string;
  public: boolean;
  masked: boolean;
}
const vars = (p: Record<string, unknown>): Variable[] => p.variables as Variable[];
const features = (p: Record<string, unknown>): Record<string, unknown> => p.features as Record<string, unknown>;

t.test('job tokens are fresh glcbt- tokens', async (t) => {
  const a = jobToken();
  t.match(a, /^glcbt-[0-9a-f]{20}$/);
  t.not(a, jobToken(), 'two calls, two tokens');
});

t.test('the job token sits where GitLab puts it: top level, CI_JOB_TOKEN, repo_url, registry, dependencies', async (t) => {
  const token = 'glcbt-0123456789abcdef0123';
  const p = makeJobPayload({ id: 77, token, serverUrl: 'https://gitlab.test', projectPath: 'g/p' });
  t.equal(p.id, 77);
  t.equal(p.token, token);
  const byKey = new Map(vars(p).map((v) => [v.key, v]));
  t.match(byKey.get('CI_JOB_TOKEN'), { value: token, masked: true, public: false });
  t.match(byKey.get('CI_JOB_ID'), { value: '77', public: true });
  t.equal((p.git_info as { repo_url: string }).repo_url, `https://gitlab-ci-token:${token}@gitlab.test/g/p.git`);
  t.match(p.credentials, [{ type: 'registry', password: token }]);
  t.match(p.dependencies, [{ id: 76, token }]);
  t.equal((p.job_info as { time_in_queue_seconds: unknown }).time_in_queue_seconds, 1, 'queued one second by default');
  t.equal((makeJobPayload({ id: 1, timeInQueueSeconds: null }).job_info as { time_in_queue_seconds: unknown }).time_in_queue_seconds, null);
});

t.test('tracing (GitLab 19): trace id from the root pipeline, span_parent_id only when given, endpoints as given', async (t) => {
  const top = features(makeJobPayload({ id: 1, pipelineId: 4242, otelEndpoints: ['http://127.0.0.1:4318/v1/traces'] })).tracing;
  t.same(top, { trace_id: '00000000000000000000000000001092', otel_endpoints: ['http://127.0.0.1:4318/v1/traces'] });
  t.notOk(Object.hasOwn(top as object, 'span_parent_id'), 'a top-level pipeline job has no span_parent_id key');

  const child = features(
    makeJobPayload({ id: 2, pipelineId: 5000, rootPipelineId: 4242, contract: { kind: 'tracing', spanParentId: null, endpoints: [] } }),
  ).tracing as Record<string, unknown>;
  t.equal(child.trace_id, '00000000000000000000000000001092', "a child pipeline's job is in its root pipeline's trace");
  t.equal(child.span_parent_id, null, 'null is sent as given');
  t.same(child.otel_endpoints, []);
  t.same(
    features(makeJobPayload({ id: 3 })).tracing,
    { trace_id: '00000000000000000000000000002329', otel_endpoints: [] },
    'default pipeline 9001',
  );
});

t.test('the other contracts: none, job_telemetry with trace_context, and the variable fallback', async (t) => {
  const none = makeJobPayload({ id: 1, contract: { kind: 'none' } });
  t.notOk('tracing' in features(none));
  t.notOk('job_telemetry' in features(none));
  t.notOk('trace_context' in none);

  const jt = makeJobPayload({ id: 1, contract: { kind: 'job_telemetry', traceId: 'ab'.repeat(16), parentSpanId: 'cd'.repeat(8) } });
  t.equal(features(jt).job_telemetry, true);
  t.same(jt.trace_context, { trace_id: 'ab'.repeat(16), parent_span_id: 'cd'.repeat(8) });
  t.notOk('tracing' in features(jt));

  const fallback = makeJobPayload({ id: 1, contract: { kind: 'variable' } });
  t.match(
    vars(fallback).filter((v) => v.key === 'GITLAB_OTEL_TELEMETRY'),
    [{ value: 'true' }],
  );
  t.notOk(
    vars(none).some((v) => v.key === 'GITLAB_OTEL_TELEMETRY'),
    'only the fallback contract sets the variable',
  );
});

t.test('extra and padding variables are appended after the predefined ones', async (t) => {
  const base = vars(makeJobPayload({ id: 1 })).length;
  const p = makeJobPayload({ id: 1, variables: [{ key: 'SECRET', value: 's3cr3t', masked: true }], padVariables: 5 });
  const all = vars(p);
  t.equal(all.length, base + 6);
  t.match(all[base], { key: 'SECRET', value: 's3cr3t', masked: true, public: false });
  t.same(
    all.slice(base + 1).map((v) => v.key),
    ['PADDING_0', 'PADDING_1', 'PADDING_2', 'PADDING_3', 'PADDING_4'],
  );
});

t.test("railsJobRunningSpanId: the EE code's job_running span id (docs/runner-protocol.md#trace-ids)", async (t) => {
  // SHA-256 of "4242:1:running", first 16 hex digits, computed apart (Python hashlib).
  t.equal(railsJobRunningSpanId(4242, 1), '82163d0ba0af8251');
  t.match(railsJobRunningSpanId(1, 2), /^[0-9a-f]{16}$/);
  t.not(railsJobRunningSpanId(1, 2), railsJobRunningSpanId(2, 1), 'keyed by root pipeline and job');
});
