// Trace ids of a pipeline tree (docs/runner-protocol.md#trace-ids): GitLab's
// derivation, the instance-scoped hash, and which pipeline is the root.
import t from 'tap';
import {
  gitlabTraceId,
  instanceScopedTraceId,
  isPipelineId,
  pipelineRootSpanId,
  rootPipelineId,
  traceIdFor,
} from '../../src/telemetry/pipeline-ids.js';
import { isValidSpanId, isValidTraceId } from '../../src/telemetry/spans.js';

t.test("GitLab's derivation: the root pipeline id in hex, zero-padded to 32 digits", async (t) => {
  t.equal(gitlabTraceId(1975306), '000000000000000000000000001e240a', "gitlab#590587's example");
  t.equal(gitlabTraceId('1975306'), gitlabTraceId(1975306), 'a CI variable string and a payload number agree');
  t.equal(gitlabTraceId('18446744073709551617'), '00000000000000010000000000000001', 'past 2^64, exact (no float rounding)');
  t.ok(isValidTraceId(gitlabTraceId(1)), 'a valid W3C trace id even for pipeline 1');
  for (const bad of ['0', '-5', '12a', '', '007'] as const) t.throws(() => gitlabTraceId(bad), RangeError, `'${bad}' is not a pipeline id`);
  t.throws(() => gitlabTraceId('9'.repeat(39)), RangeError, 'too large for 128 bits');
});

t.test('instance-scoped: different instances never share an id; the URL is normalised', async (t) => {
  const a = instanceScopedTraceId('https://gitlab.example.com', 55);
  t.ok(isValidTraceId(a));
  t.equal(instanceScopedTraceId('HTTPS://GitLab.example.com/', '55'), a, 'case and trailing slash do not matter');
  t.not(instanceScopedTraceId('https://gitlab.other.example', 55), a, 'another instance, another trace');
  t.not(gitlabTraceId(55), a);
  t.equal(traceIdFor('gitlab', 'https://gitlab.example.com', 55), gitlabTraceId(55));
  t.equal(traceIdFor('instance-scoped', 'https://gitlab.example.com', 55), a);
  t.ok(isValidSpanId(pipelineRootSpanId('https://gitlab.example.com', 55)));
  t.not(pipelineRootSpanId('https://gitlab.example.com', 55), pipelineRootSpanId('https://gitlab.example.com', 56));
});

t.test('the root pipeline: passed down by the parent, else the own pipeline', async (t) => {
  t.same(rootPipelineId({ CI_PIPELINE_ID: '56', GITLAB_OTEL_ROOT_PIPELINE_ID: '55' }), { id: '55', source: 'variable' });
  t.same(rootPipelineId({ CI_PIPELINE_ID: '56' }), { id: '56', source: 'own-pipeline' });
  t.same(
    rootPipelineId({ CI_PIPELINE_ID: '56', GITLAB_OTEL_ROOT_PIPELINE_ID: 'x' }),
    { id: '56', source: 'own-pipeline' },
    'a malformed value is ignored',
  );
  t.equal(rootPipelineId({}), undefined);
  t.equal(isPipelineId(undefined), false);
  t.equal(isPipelineId(12), true);
});
