import t from 'tap';
import { Counter, Registry } from 'prom-client';
import { makeJobPayload } from '../../../src/lab/job-payload.js';
import { JobDecider, isJobSampled } from '../../../src/runner-proxy/job/job-decision.js';
import { tokenDigest } from '../../../src/runner-proxy/job/job-tokens.js';
import type { NegotiationOptions } from '../../../src/runner-proxy/wire/negotiation.js';
import { TraceSampling } from '../../../src/telemetry/sampling.js';
import { traceparent } from '../../../src/telemetry/spans.js';
import { memoryLogger } from '../../support/memory-logger.js';

const NEGOTIATION: NegotiationOptions = {
  policy: 'payload-or-variable',
  nativeRunnerSpan: 'replace',
  usePayloadEndpoints: false,
  upstreamUrl: 'https://gitlab.example.com',
};
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

function decider(followForMetrics: boolean) {
  const registry = new Registry();
  const negotiation = new Counter({ name: 'n_total', help: 'h', labelNames: ['outcome'], registers: [registry] });
  const log = memoryLogger();
  const d = new JobDecider({ negotiation: NEGOTIATION, traceContext: { inject: true }, followForMetrics, log, metrics: { negotiation } });
  const counted = async (outcome: string) => (await negotiation.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
  return { d, log, counted };
}

t.test(
  'a job with telemetry: the edited payload names the decided job span; the decided job is plain data without the token',
  async (t) => {
    const { d, counted } = decider(false);
    const token = 'glcbt-decision-token-0001';
    const payload = makeJobPayload({ id: 11, token, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } });
    const at = 1_700_000_000_000_000_000n;
    const { edited, job } = d.decide(JSON.stringify(payload), undefined, at);
    t.ok(job && edited);
    if (!job || !edited) return;
    t.match(job, { contract: 'tracing', traceId: TRACE, parentSpanId: PARENT, sampled: true, assignedAt: at, view: { jobId: 11 } });
    t.match(job.jobSpanId, /^[0-9a-f]{16}$/);
    t.equal(job.tokenDigest, tokenDigest(token), "the token's digest");
    const variables = (JSON.parse(edited) as { variables: { key: string; value: string }[] }).variables;
    t.equal(variables.find((v) => v.key === 'TRACEPARENT')?.value, traceparent(TRACE, job.jobSpanId, true));
    t.same(structuredClone(job), job, 'survives structured clone (bigint included)');
    t.notOk(JSON.stringify(job, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)).includes(token), 'no token in it');
    t.equal(await counted('tracing'), 1);
  },
);

t.test('no telemetry: nothing to track unless CI/CD metrics follow every job; unreadable payloads counted and logged', async (t) => {
  const none = JSON.stringify(makeJobPayload({ id: 12, contract: { kind: 'none' } }));
  const off = decider(false);
  t.same(off.d.decide(none, undefined, 1n), {}, 'forwarded untouched, nothing followed');
  const on = decider(true);
  const { edited, job } = on.d.decide(none, undefined, 1n);
  t.equal(edited, undefined, 'the payload is not edited');
  t.match(job, { contract: 'none', sampled: false, payloadEndpoints: [], view: { jobId: 12 } });
  t.equal(await on.counted('none'), 1);
  t.same(on.d.decide('{"id":', undefined, 1n), {});
  t.equal(await on.counted('unreadable'), 1);
  t.match(on.log.lines, [{ level: 'warn', msg: /not valid JSON/, fields: { bytes: 6 } }]);
});

t.test('isJobSampled: only jobs our fallback enabled are sampled here', async (t) => {
  const never = new TraceSampling({ sampler: 'always_off', ratio: 0, maxHeldSpansPerJob: 1, maxHeldSpans: 1 });
  t.equal(isJobSampled(never, 'tracing', TRACE), true, 'GitLab sampled it');
  t.equal(isJobSampled(never, 'variable', TRACE), false);
  t.equal(isJobSampled(undefined, 'variable', TRACE), true, 'no sampler: all exported');
});
