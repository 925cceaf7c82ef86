import t from 'tap';
import { TraceIdRatioBasedSampler, SamplingDecision } from '@opentelemetry/sdk-trace';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { samplingFromEnv, TraceSampling, UnsampledJobHold } from '../../src/telemetry/sampling.js';
import { parseOtlpHeaders, otlpHeadersFromEnv } from '../../src/telemetry/auth/headers.js';
import { endpointFromPayload } from '../../src/telemetry/export/settings.js';
import { pipelineTraceId } from '../../src/telemetry/pipeline-ids.js';
import { makeSpans } from '../support/export.js';

t.test('OTEL_TRACES_SAMPLER parsing', async (t) => {
  t.match(samplingFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).settings, {
    sampler: 'parentbased_traceidratio',
    ratio: 0.25,
  });
  const bad = samplingFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' });
  t.equal(bad.settings.ratio, 1);
  t.equal(bad.warnings.length, 1);
  t.equal(samplingFromEnv({ OTEL_TRACES_SAMPLER: 'jaeger_remote' }).settings.sampler, 'parentbased_always_on');
});

t.test('the decision is by trace id, the same as the OTel JS SDK, so a pipeline is kept or dropped whole', async (t) => {
  const s = new TraceSampling({ sampler: 'parentbased_traceidratio', ratio: 0.3, maxHeldSpans: 10, maxHeldSpansPerJob: 10 });
  const sdk = new TraceIdRatioBasedSampler(0.3);
  let kept = 0;
  for (let p = 1; p <= 2000; p++) {
    const traceId = pipelineTraceId('https://gitlab.example.com', p);
    const ours = s.isSampled({ traceId });
    const theirs = sdk.shouldSample(ROOT_CONTEXT, traceId).decision === SamplingDecision.RECORD_AND_SAMPLED;
    if (ours !== theirs) t.fail(`pipeline ${p} decided differently`);
    if (ours !== s.isSampled({ traceId })) t.fail('not deterministic');
    if (ours) kept++;
  }
  t.ok(kept > 400 && kept < 800, `about 30 % kept (${kept} of 2000)`);
  // Known values of the XOR-of-4-words algorithm: 0 is kept at any ratio > 0, all-f never below 1.
  t.equal(s.isSampled({ traceId: '00000000000000000000000000000001' }), true);
  t.equal(s.isSampled({ traceId: 'ffffffff000000000000000000000000' }), false);
  t.equal(
    s.isSampled({ traceId: 'ffffffff000000000000000000000000', parent: { spanId: '00f067aa0ba902b7', sampled: true } }),
    true,
    'a sampled parent wins',
  );
});

t.test('unsampled jobs are held, bounded, and kept only if they fail', async (t) => {
  const hold = new UnsampledJobHold({ maxHeldSpansPerJob: 5, maxHeldSpans: 8 });
  t.equal(hold.hold('a', makeSpans(4)).overflow, 0);
  t.equal(hold.hold('a', makeSpans(3)).overflow, 2, 'per-job bound');
  t.equal(hold.hold('b', makeSpans(5)).overflow, 2, 'overall bound');
  t.equal(hold.heldSpans, 8);
  t.equal(hold.release('a', true).length, 5, 'failed job: its spans are exported');
  t.equal(hold.release('b', false).length, 0, 'successful unsampled job: dropped');
  t.equal(hold.heldSpans, 0);
});

t.test('OTEL_EXPORTER_OTLP_HEADERS', async (t) => {
  t.same(parseOtlpHeaders('api-key=a%20b%3Dc, X-Tenant = ci ,bad,=x,k=%E0%A4%A'), {
    headers: { 'api-key': 'a b=c', 'x-tenant': 'ci' },
    invalid: [2, 3, 4],
  });
  t.same(otlpHeadersFromEnv({ OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=2', OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'b=3' }).headers, {
    a: '1',
    b: '3',
  });
  t.same(parseOtlpHeaders(undefined), { headers: {}, invalid: [] });
});

t.test('payload endpoints become endpoint settings', async (t) => {
  const r = endpointFromPayload({
    url: 'grpcs://otel.gitlab.net',
    auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'aud' } },
  });
  t.ok(r.ok);
  if (r.ok)
    t.match(r.endpoint, {
      url: 'https://otel.gitlab.net:4317',
      auth: { type: 'gcp_workload_identity', audience: 'aud' },
      tls: { insecureSkipVerify: false },
    });
  t.match(endpointFromPayload({ url: 'https://otel.example/v1/traces' }), { ok: false, error: { code: 'UNSUPPORTED_ENDPOINT_SCHEME' } });
  t.match(endpointFromPayload({ url: 'grpc://x:1', auth: { type: 'basic' } }), { ok: false, error: { code: 'UNSUPPORTED_AUTH_TYPE' } });
  t.match(endpointFromPayload({ url: 'not a url' }), { ok: false, error: { code: 'INVALID_ENDPOINT_URL' } });
});
