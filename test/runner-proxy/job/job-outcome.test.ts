// job-outcome: the failure reason an outcome carries (docs/runner-protocol.md#job-updates).
import t from 'tap';
import { failureReasonOf } from '../../../src/runner-proxy/job/job-outcome.js';

t.test('failureReasonOf', async (t) => {
  t.equal(failureReasonOf({ state: 'success' }), undefined, 'a success has no failure reason');
  t.equal(failureReasonOf({ state: 'failed', failureReason: 'script_failure', exitCode: 1 }), 'script_failure');
  t.equal(failureReasonOf({ state: 'failed' }), undefined, 'a failure without a reason stays without one');
  t.equal(failureReasonOf({ state: 'canceled', failureReason: 'job_canceled' }), 'job_canceled');
  t.equal(failureReasonOf({ state: 'abandoned' }), 'abandoned', 'an abandoned job is named as such');
});
