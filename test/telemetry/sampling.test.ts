import t from 'tap';
import { samplingFromEnv, TraceSampling, UnsampledJobHold } from '../../src/telemetry/sampling.js';
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
  // The expectation is computed here from the algorithm the SDK documents (TraceIdRatioBasedSampler:
  // XOR of the trace id's four 32-bit words, kept when below floor(ratio × 0xffffffff)), not by
  // asking the SDK class our wrapper is built on, so a wrapper that decided anything else would fail.
  const expected = (traceId: string, ratio: number): boolean => {
    let acc = 0;
    for (let i = 0; i < 32; i += 8) acc = (acc ^ parseInt(traceId.slice(i, i + 8), 16)) >>> 0;
    return acc < Math.floor(ratio * 0xffffffff);
  };
  const s = new TraceSampling({ sampler: 'parentbased_traceidratio', ratio: 0.3, maxHeldSpans: 10, maxHeldSpansPerJob: 10 });
  let kept = 0;
  for (let p = 1; p <= 2000; p++) {
    const traceId = pipelineTraceId('https://gitlab.example.com', p);
    const ours = s.isSampled({ traceId });
    if (ours !== expected(traceId, 0.3)) t.fail(`pipeline ${p} decided differently from the SDK's algorithm`);
    if (ours !== s.isSampled({ traceId })) t.fail('not deterministic');
    if (ours) kept++;
  }
  t.ok(kept > 400 && kept < 800, `about 30 % kept (${kept} of 2000)`);
  // The boundary, exactly: at ratio 0.5 the bound is 0x7fffffff; words XOR to it or just below.
  const half = new TraceSampling({ sampler: 'traceidratio', ratio: 0.5, maxHeldSpans: 10, maxHeldSpansPerJob: 10 });
  t.equal(half.isSampled({ traceId: '7ffffffe000000000000000000000000' }), true, 'just below the bound: kept');
  t.equal(half.isSampled({ traceId: '7fffffff000000000000000000000000' }), false, 'at the bound: dropped');
  t.equal(half.isSampled({ traceId: 'ffffffff80000000000000000000000f' }), true, 'words are XORed: 0x7ffffff0 is kept');
  t.equal(half.isSampled({ traceId: '00000000000000000000000080000000' }), false, 'the last word counts: 0x80000000 is dropped');
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
