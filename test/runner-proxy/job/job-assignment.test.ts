import t from 'tap';
import { makeJobPayload } from '../../../src/lab/job-payload.js';
import { editJobRequest, readAssignment, traceContextVariables } from '../../../src/runner-proxy/job/job-assignment.js';
import type { NegotiationOptions } from '../../../src/runner-proxy/wire/negotiation.js';

const NEGOTIATION: NegotiationOptions = {
  policy: 'payload-or-variable',
  nativeRunnerSpan: 'replace',
  usePayloadEndpoints: false,
  upstreamUrl: 'https://gitlab.example.com',
};
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

t.test('readAssignment: telemetry or the reason for none', async (t) => {
  t.match(readAssignment('{"id":', undefined, NEGOTIATION), { telemetry: false, outcome: 'unreadable', bytes: 6 });
  t.match(readAssignment('[1]', undefined, NEGOTIATION), { telemetry: false, outcome: 'unreadable', warning: /unusable/ });
  // No telemetry, but the job is still followed for CI/CD metrics: its metadata and the runner's self-description come back.
  const none = readAssignment(
    JSON.stringify(makeJobPayload({ id: 5, contract: { kind: 'none' } })),
    Buffer.from(JSON.stringify({ info: { executor: 'shell' } })),
    NEGOTIATION,
  );
  t.match(none, { telemetry: false, outcome: 'none', metricsOnly: { view: { jobId: 5 }, runner: { executor: 'shell' } } });
  t.notOk('warning' in none, 'no warning for a job that simply has no telemetry');
  const bad = makeJobPayload({ id: 6, contract: { kind: 'tracing', traceId: 'nothex' } });
  t.match(readAssignment(JSON.stringify(bad), undefined, NEGOTIATION), {
    telemetry: false,
    outcome: 'invalid',
    jobId: 6,
    warning: /trace/,
    metricsOnly: { view: { jobId: 6 } },
  });
  const request = Buffer.from(JSON.stringify({ info: { version: '19.4.0', executor: 'docker' } }));
  const ok = readAssignment(JSON.stringify(makeJobPayload({ id: 7, contract: { kind: 'tracing', traceId: TRACE } })), request, NEGOTIATION);
  t.match(ok, {
    telemetry: true,
    view: { jobId: 7 },
    runner: { version: '19.4.0', executor: 'docker' },
    decision: { contract: 'tracing', traceId: TRACE },
  });
});

t.test('traceContextVariables: TRACEPARENT (with the sampled flag), TRACESTATE and the OTLP endpoint, only where allowed', async (t) => {
  const job = { traceId: TRACE, jobSpanId: 'a1a2a3a4a5a6a7a8', sampled: false };
  const view = { hasVariablesArray: true, definesTraceparent: false };
  t.same(traceContextVariables({ inject: true, otlpEndpoint: 'http://127.0.0.1:4317' }, view, job), [
    { key: 'TRACEPARENT', value: `00-${TRACE}-a1a2a3a4a5a6a7a8-00` },
    { key: 'TRACESTATE', value: '' },
    { key: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://127.0.0.1:4317' },
  ]);
  t.same(traceContextVariables({ inject: true }, view, { ...job, sampled: true })[0], {
    key: 'TRACEPARENT',
    value: `00-${TRACE}-a1a2a3a4a5a6a7a8-01`,
  });
  t.same(traceContextVariables({ inject: false }, view, job), [], 'injection off');
  t.same(traceContextVariables({ inject: true }, { ...view, definesTraceparent: true }, job), [], 'the job sets its own TRACEPARENT');
  t.same(traceContextVariables({ inject: true }, { ...view, hasVariablesArray: false }, job), [], 'no variables array to append to');
});

t.test('editJobRequest advertises job_telemetry, and leaves what it cannot edit alone', async (t) => {
  const edited = editJobRequest(Buffer.from('{"token":"glrt-x","info":{"features":{"trace_sections":true}}}'));
  t.same(JSON.parse(edited!.toString('utf8')), { token: 'glrt-x', info: { features: { trace_sections: true, job_telemetry: true } } });
  t.equal(editJobRequest(Buffer.from('{"info":{"features":{"job_telemetry":true}}}')), undefined, 'already advertised');
  t.equal(editJobRequest(Buffer.from('{"token":"glrt-x"}')), undefined, 'no features object');
});
