// Negotiation against every payload variant seen upstream
// (docs/runner-protocol.md#job-telemetry): `span_parent_id` absent, empty,
// null or set; `otel_endpoints` as strings, objects or mixed, with and without
// auth; unknown fields; and what the runner is left with in each case.
import t from 'tap';
import { editJobPayload } from '../../../src/runner-proxy/wire/payload-edits.js';
import { readJobPayload, readTracing, type JobView } from '../../../src/runner-proxy/wire/payload.js';
import { negotiate, splitEndpoints, type NegotiationOptions } from '../../../src/runner-proxy/wire/negotiation.js';
import { makeJobPayload } from '../../../src/lab/job-payload.js';
import { gitlabTraceId, instanceScopedTraceId, pipelineRootSpanId } from '../../../src/telemetry/pipeline-ids.js';

const TRACE = '000000000000000000000000001e240a';
const PARENT = '00f067aa0ba902b7';
const OPTS: NegotiationOptions = {
  policy: 'payload',
  nativeRunnerSpan: 'replace',
  usePayloadEndpoints: true,
  upstreamUrl: 'https://gitlab.example.com',
};

function view(json: unknown): JobView {
  const r = readJobPayload(json);
  if (!r.ok) throw new Error(r.problem);
  return r.value;
}

/** A payload's text as GitLab would send it, with `features.tracing` exactly as given. */
function payloadText(tracing: unknown): string {
  return JSON.stringify({ id: 1, token: 'glcbt-x', variables: [], features: { trace_sections: true, tracing } });
}

/** What the runner decodes after the proxy's edit (GitLab's text when the proxy leaves it alone). */
function delivered(text: string, opts: NegotiationOptions = OPTS): { runner: Record<string, unknown>; text: string } {
  const decision = negotiate(view(JSON.parse(text)), opts);
  const runnerTracing = decision.enabled ? decision.runnerTracing : { action: 'keep' as const };
  const out = editJobPayload(text, { tracing: runnerTracing, variables: [] }) ?? text;
  return { runner: (JSON.parse(out) as { features: Record<string, unknown> }).features, text: out };
}

t.test('span_parent_id: absent, empty and null mean a root span; a valid one is the parent', async (t) => {
  for (const [label, tracing] of [
    ['absent (top-level pipeline job)', { trace_id: TRACE, otel_endpoints: [] }],
    ['empty string', { trace_id: TRACE, span_parent_id: '', otel_endpoints: [] }],
    ['null', { trace_id: TRACE, span_parent_id: null, otel_endpoints: [] }],
  ] as const) {
    const d = negotiate(view(JSON.parse(payloadText(tracing))), OPTS);
    t.match(d, { enabled: true, contract: 'tracing', traceId: TRACE, warnings: [] }, label);
    t.ok(d.enabled && !('parentSpanId' in d), `${label}: no parent`);
  }
  const child = negotiate(view(JSON.parse(payloadText({ trace_id: TRACE, span_parent_id: PARENT }))), OPTS);
  t.match(child, { enabled: true, traceId: TRACE, parentSpanId: PARENT }, 'child-pipeline job nests under the bridge job');
  const odd = negotiate(view(JSON.parse(payloadText({ trace_id: TRACE, span_parent_id: 'XYZ' }))), OPTS);
  t.match(
    odd,
    { enabled: true, traceId: TRACE, warnings: [/span_parent_id is 3 characters.*root span/] },
    'a malformed parent: root span, one warning',
  );
  t.ok(odd.enabled && odd.parentSpanId === undefined);
  const numeric = negotiate(view(JSON.parse(payloadText({ trace_id: TRACE, span_parent_id: 12 }))), OPTS);
  t.match(numeric, { enabled: true, warnings: [/span_parent_id is a number/] });
});

t.test('an invalid trace_id switches telemetry off with one warning, and the runner gets GitLab bytes', async (t) => {
  for (const [bad, why] of [
    [{ trace_id: TRACE.toUpperCase() }, /trace_id is 32 characters, not lowercase hex/],
    [{ trace_id: TRACE.slice(1) }, /trace_id/],
    [{ trace_id: '0'.repeat(32) }, /all zeros/],
    [{ span_parent_id: PARENT }, /trace_id is missing/],
    [{ trace_id: 5 }, /trace_id is a number/],
    ['tracing', /not an object/],
  ] as const) {
    const text = payloadText(bad);
    t.match(negotiate(view(JSON.parse(text)), OPTS), { enabled: false, warning: why });
    t.equal(delivered(text).text, text, 'forwarded untouched');
  }
  t.same(negotiate(view(JSON.parse(payloadText(null))), OPTS), { enabled: false }, 'null tracing: no contract, no warning');
});

t.test('endpoints GitLab names: served by the proxy where it can, left to the runner where it cannot', async (t) => {
  const grpc = { url: 'grpc://otel-collector.example:4317' };
  const ftp = 'ftp://collector.example/v1/traces';
  const oddAuth = { url: 'grpcs://otel.example:4317', auth: { type: 'http_bearer_aws_sigv4', region: 'x' } };

  // All servable: features.tracing removed, our spans replace the runner's.
  const all = negotiate(view(JSON.parse(payloadText({ trace_id: TRACE, otel_endpoints: [grpc] }))), OPTS);
  t.match(all, { enabled: true, runnerTracing: { action: 'remove' }, payloadEndpoints: [grpc], leftToRunner: [] });
  t.notOk('tracing' in delivered(payloadText({ trace_id: TRACE, otel_endpoints: [grpc] })).runner, 'the runner exports nothing');

  // Mixed: the proxy serves grpc, the runner keeps the others (strings become objects, objects kept byte for byte).
  const mixedText = payloadText({ trace_id: TRACE, otel_endpoints: [ftp, grpc, oddAuth, { nope: 1 }] });
  const mixed = negotiate(view(JSON.parse(mixedText)), OPTS);
  t.match(mixed, {
    enabled: true,
    payloadEndpoints: [grpc],
    leftToRunner: [
      { where: 'ftp://collector.example', reason: 'unsupported_scheme' },
      { where: 'grpcs://otel.example:4317', reason: 'unsupported_auth' },
    ],
    runnerTracing: { action: 'narrow', keep: [0, 2] },
    warnings: [/otel_endpoints\[3\] has no url/],
  });
  const out = delivered(mixedText);
  t.same(out.runner.tracing, { trace_id: TRACE, otel_endpoints: [{ url: ftp }, oddAuth] }, 'the runner keeps only what it serves');
  t.ok(out.text.includes(JSON.stringify(oddAuth)), 'an object entry (with its unknown fields) is kept byte for byte');

  // The proxy serves none: GitLab's block reaches the runner as sent.
  const noneText = payloadText({ trace_id: TRACE, otel_endpoints: [oddAuth] });
  t.match(negotiate(view(JSON.parse(noneText)), OPTS), {
    runnerTracing: { action: 'keep' },
    leftToRunner: [{ reason: 'unsupported_auth' }],
  });
  t.equal(delivered(noneText).text, noneText);

  // Strings the proxy cannot serve are still rewritten: the runner's struct decodes objects only.
  const strText = payloadText({ trace_id: TRACE, otel_endpoints: [ftp] });
  t.same(delivered(strText).runner.tracing, { trace_id: TRACE, otel_endpoints: [{ url: ftp }] });

  // No endpoints at all: our spans go to the configured collectors, the runner's (no-op) tracing is removed.
  t.match(negotiate(view(JSON.parse(payloadText({ trace_id: TRACE }))), OPTS), {
    runnerTracing: { action: 'remove' },
    payloadEndpoints: [],
  });
});

t.test('config: keep the native span, or serve none of the payload endpoints', async (t) => {
  const grpc = { url: 'grpc://otel-collector.example:4317' };
  const text = payloadText({ trace_id: TRACE, otel_endpoints: [grpc] });
  const keep = negotiate(view(JSON.parse(text)), { ...OPTS, nativeRunnerSpan: 'keep' });
  t.match(keep, { enabled: true, runnerTracing: { action: 'keep' }, payloadEndpoints: [], leftToRunner: [] });
  t.equal(delivered(text, { ...OPTS, nativeRunnerSpan: 'keep' }).text, text, 'keep: GitLab bytes');
  const keepStrings = payloadText({ trace_id: TRACE, otel_endpoints: ['grpc://otel-collector.example:4317'] });
  t.same(delivered(keepStrings, { ...OPTS, nativeRunnerSpan: 'keep' }).runner.tracing, { trace_id: TRACE, otel_endpoints: [grpc] });
  const notServed = negotiate(view(JSON.parse(text)), { ...OPTS, usePayloadEndpoints: false });
  t.match(notServed, {
    runnerTracing: { action: 'keep' },
    payloadEndpoints: [],
    leftToRunner: [{ where: 'grpc://otel-collector.example:4317', reason: 'not_served_by_config' }],
  });
});

t.test('the egress policy: a payload endpoint it refuses stays with the runner', async (t) => {
  // Loopback is refused by default (docs/security.md#payload-endpoints); the runner serves it as it would without the proxy.
  const loopback = { url: 'grpc://127.0.0.1:4317' };
  const d = negotiate(view(JSON.parse(payloadText({ trace_id: TRACE, otel_endpoints: [loopback] }))), OPTS);
  t.match(d, { enabled: true, payloadEndpoints: [], leftToRunner: [{ where: 'grpc://127.0.0.1:4317', reason: 'egress_policy' }] });
});

t.test('readTracing normalises endpoints and reports what it cannot read', async (t) => {
  const read = readTracing({
    trace_id: TRACE,
    span_parent_id: '',
    otel_endpoints: [
      'https://otel-collector.example/v1/traces',
      { url: 'grpcs://a:4317', auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'aud' } }, extra: true },
      { url: 'grpcs://b:4317', auth: 'bearer' },
      { url: 'grpcs://c:4317', auth: null },
      7,
    ],
    future_field: { x: 1 },
  });
  t.ok(read.ok);
  if (!read.ok) return;
  t.same(
    read.value.endpoints.map((e) => [e.index, e.endpoint]),
    [
      [0, { url: 'https://otel-collector.example/v1/traces' }],
      [1, { url: 'grpcs://a:4317', auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'aud' } } }],
      [2, { url: 'grpcs://b:4317', auth: { type: 'malformed' } }],
      [3, { url: 'grpcs://c:4317' }],
    ],
  );
  t.equal(read.value.stringEndpoints, true);
  t.same(read.value.endpointProblems, ['features.tracing.otel_endpoints[4] has no url']);
  t.match(readTracing({ trace_id: TRACE, otel_endpoints: 'grpc://x' }), {
    ok: true,
    value: { endpoints: [], endpointProblems: [/not an array/] },
  });
  const split = splitEndpoints(read.value, OPTS);
  t.same(
    split.leftToRunner.map((l) => l.reason).filter((r) => r === 'unsupported_auth'),
    ['unsupported_auth'],
    'an unreadable auth block is an auth the proxy cannot serve',
  );
});

t.test('seed contract and the fallback variable', async (t) => {
  const seed = view({
    id: 1,
    variables: [],
    features: { job_telemetry: true },
    trace_context: { trace_id: TRACE, parent_span_id: PARENT },
  });
  t.match(negotiate(seed, OPTS), { enabled: true, contract: 'job_telemetry', parentSpanId: PARENT, runnerTracing: { action: 'keep' } });
  t.match(negotiate(view({ id: 1, variables: [], features: { job_telemetry: true } }), OPTS), { enabled: false, warning: /trace_context/ });

  const fallback = view(makeJobPayload({ id: 3, pipelineId: 55, contract: { kind: 'variable' } }));
  t.same(negotiate(fallback, OPTS), { enabled: false }, 'policy payload: the variable is ignored silently');
  const vopts = { ...OPTS, policy: 'payload-or-variable' as const };
  t.match(negotiate(fallback, vopts), {
    enabled: true,
    contract: 'variable',
    traceId: gitlabTraceId(55),
    parentSpanId: pipelineRootSpanId('https://gitlab.example.com', 55),
    samplingKey: instanceScopedTraceId('https://gitlab.example.com', 55),
  });
  t.equal(gitlabTraceId(55), '00000000000000000000000000000037', 'by default the trace id GitLab would give pipeline 55');
  t.match(negotiate(fallback, { ...vopts, traceIds: 'instance-scoped' }), {
    traceId: instanceScopedTraceId('https://gitlab.example.com', 55),
  });
  const child = view(
    makeJobPayload({
      id: 4,
      pipelineId: 56,
      contract: { kind: 'variable' },
      variables: [{ key: 'GITLAB_OTEL_ROOT_PIPELINE_ID', value: '55', public: true }],
    }),
  );
  t.match(
    negotiate(child, vopts),
    { traceId: gitlabTraceId(55), parentSpanId: pipelineRootSpanId('https://gitlab.example.com', 55) },
    'a child pipeline told its root joins the root trace',
  );
  const masked = view(
    makeJobPayload({
      id: 5,
      pipelineId: 57,
      contract: { kind: 'variable' },
      variables: [{ key: 'GITLAB_OTEL_ROOT_PIPELINE_ID', value: '55', masked: true }],
    }),
  );
  t.match(negotiate(masked, vopts), { traceId: gitlabTraceId(57) }, 'a masked root id is not read: the own pipeline is used');
  t.match(negotiate(view({ id: 6, variables: [{ key: 'GITLAB_OTEL_TELEMETRY', value: 'true', public: true }] }), vopts), {
    enabled: false,
    warning: /no CI_PIPELINE_ID/,
  });
  t.same(negotiate(view({ id: 9, variables: [] }), OPTS), { enabled: false });
});

t.test('the simulator default job is a top-level GitLab 19 job', async (t) => {
  const payload = makeJobPayload({ id: 11, pipelineId: 1975306 });
  const tracing = (payload.features as { tracing: Record<string, unknown> }).tracing;
  t.equal(tracing.trace_id, TRACE, 'trace id from the root pipeline id');
  t.notOk('span_parent_id' in tracing, 'no span_parent_id for a top-level pipeline job');
  t.match(negotiate(view(payload), OPTS), { enabled: true, contract: 'tracing', traceId: TRACE });
});
