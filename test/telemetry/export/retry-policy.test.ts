// The gRPC half of the retry policy, against the OTLP specification's table of
// retryable status codes (written out here by number, not read from the module):
// CANCELLED 1, DEADLINE_EXCEEDED 4, ABORTED 10, OUT_OF_RANGE 11, UNAVAILABLE 14
// and DATA_LOSS 15 are retryable; RESOURCE_EXHAUSTED 8 only with RetryInfo;
// every other code is not. UNAUTHENTICATED 16 gets one fresh token. The HTTP
// half is tested with the transports (transport-selection.test.ts).
import t from 'tap';
import { classifyGrpcStatus, decideFailure } from '../../../src/telemetry/export/retry-policy.js';

const SPEC_RETRYABLE = new Set([1, 4, 10, 11, 14, 15]);

t.test('every gRPC status code is classified as the OTLP specification says', async (t) => {
  for (let code = 0; code <= 16; code++) {
    const expected = code === 16 ? 'unauthenticated' : SPEC_RETRYABLE.has(code) ? 'retryable' : 'permanent';
    if (code === 8) continue;
    t.equal(classifyGrpcStatus(code, undefined), expected, `code ${code} without RetryInfo`);
    t.equal(classifyGrpcStatus(code, 250), expected, `code ${code} with RetryInfo: RetryInfo changes nothing`);
  }
});

t.test('RESOURCE_EXHAUSTED is retried only when the server says when (RetryInfo)', async (t) => {
  t.equal(classifyGrpcStatus(8, undefined), 'permanent', 'a size limit or hard quota: retrying cannot help');
  t.equal(classifyGrpcStatus(8, 2000), 'retryable');
  t.same(decideFailure(classifyGrpcStatus(8, 2000), 2000, false), { action: 'retry', minDelayMs: 2000 }, 'no sooner than asked');
});

t.test('UNAUTHENTICATED: one fresh token, then the spans are dropped', async (t) => {
  t.same(decideFailure(classifyGrpcStatus(16, undefined), undefined, false), { action: 'reauthenticate' });
  t.same(decideFailure(classifyGrpcStatus(16, undefined), undefined, true), { action: 'drop' });
  t.same(
    decideFailure(classifyGrpcStatus(14, undefined), undefined, true),
    { action: 'retry', minDelayMs: 0 },
    'other failures are unaffected by a past refresh',
  );
});
