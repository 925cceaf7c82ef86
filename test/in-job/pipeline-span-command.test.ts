import t from 'tap';
import { decidePipelineSpan } from '../../src/in-job/pipeline-span-command.js';
import { gitlabTraceId, instanceScopedTraceId, pipelineRootSpanId } from '../../src/telemetry/pipeline-ids.js';
import { jobEnv, runCli } from '../support/in-job-harness.js';

const env = {
  CI_SERVER_URL: 'https://GitLab.example.com/',
  CI_PIPELINE_ID: '55',
  CI_PIPELINE_CREATED_AT: '2026-03-01T10:00:00Z',
  CI_PROJECT_PATH: 'g/p',
};
const now = BigInt(Date.parse('2026-03-01T10:05:00Z')) * 1_000_000n;

t.test('root span ids are the ones the proxy derives; times and result from CI variables', async (t) => {
  const d = decidePipelineSpan(env, 'success', now);
  if (d.kind !== 'export') throw new Error('expected export');
  t.equal(d.span.traceId, gitlabTraceId(55), "GitLab's trace id for pipeline 55, as the proxy derives it by default");
  t.equal(d.span.spanId, pipelineRootSpanId('https://gitlab.example.com', 55), 'instance URL normalised like the proxy does');
  t.equal(d.span.startTimeUnixNano, BigInt(Date.parse(env.CI_PIPELINE_CREATED_AT)) * 1_000_000n);
  t.equal(d.span.endTimeUnixNano, now);
  t.equal(d.span.status.code, 0);
  t.notOk('error.type' in d.span.attributes);
  const f = decidePipelineSpan(env, 'failure', now);
  t.match(f, { kind: 'export', span: { status: { code: 2 }, attributes: { 'error.type': 'failure', 'cicd.pipeline.result': 'failure' } } });
  const fromFallbackJob = decidePipelineSpan({ ...env, TRACEPARENT: `00-${gitlabTraceId(55)}-1111111111111111-01` }, 'success', now);
  t.equal(fromFallbackJob.kind, 'export', 'a TRACEPARENT in the same derived trace: fallback mode, export');
});

t.test('trace id schemes and the root pipeline', async (t) => {
  const scoped = decidePipelineSpan({ ...env, GITLAB_OTEL_TRACE_IDS: 'instance-scoped' }, 'success', now);
  t.match(scoped, { kind: 'export', span: { traceId: instanceScopedTraceId('https://gitlab.example.com', 55) } });
  const child = decidePipelineSpan({ ...env, CI_PIPELINE_ID: '56', GITLAB_OTEL_ROOT_PIPELINE_ID: '55' }, 'success', now);
  t.match(child, { kind: 'export', span: { traceId: gitlabTraceId(55), spanId: pipelineRootSpanId('https://gitlab.example.com', 55) } });
  const unknownScheme = decidePipelineSpan({ ...env, GITLAB_OTEL_TRACE_IDS: 'random' }, 'success', now);
  t.match(unknownScheme, { kind: 'export', span: { traceId: gitlabTraceId(55) } }, 'an unknown scheme falls back to gitlab');
  const childWithoutRoot = decidePipelineSpan(
    { ...env, CI_PIPELINE_ID: '56', TRACEPARENT: `00-${gitlabTraceId(55)}-1111111111111111-01` },
    'success',
    now,
  );
  t.match(childWithoutRoot, { kind: 'skip' }, 'a child pipeline not told its root would start an orphan trace: skipped');
});

t.test('skips when GitLab owns the trace or the pipeline is unknown', async (t) => {
  t.match(decidePipelineSpan({ ...env, TRACEPARENT: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }, 'success', now), {
    kind: 'skip',
    reason: /GitLab provides/,
  });
  t.match(decidePipelineSpan({ CI_PIPELINE_ID: '55' }, 'success', now), { kind: 'skip' });
  t.match(decidePipelineSpan({ ...env, CI_PIPELINE_CREATED_AT: 'not a date' }, 'success', now), {
    kind: 'export',
    span: { startTimeUnixNano: now },
  });
});

t.test('the command never fails the pipeline on telemetry, but refuses bad usage', async (t) => {
  const down = await runCli(
    ['pipeline-span', '--timeout-ms', '500'],
    jobEnv({ ...env, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' }),
  );
  t.equal(down.code, 0);
  t.match(down.stderr, /not exported to 127\.0\.0\.1:1/);
  const bad = await runCli(['pipeline-span', '--result', 'great'], jobEnv(env));
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--result must be one of/);
});
