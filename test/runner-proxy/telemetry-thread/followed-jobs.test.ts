import t from 'tap';
import { FollowedJobs } from '../../../src/runner-proxy/telemetry-thread/followed-jobs.js';
import { tokenDigest } from '../../../src/runner-proxy/job/job-tokens.js';
import type { DecidedJob } from '../../../src/runner-proxy/job/job-decision.js';

const decided = (jobId: number, over: Partial<DecidedJob> = {}): DecidedJob => ({
  view: { jobId, traceSections: true, ci: {}, hasVariablesArray: true, definesTraceparent: false, schemaProblems: [] },
  runner: {},
  contract: 'tracing',
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  jobSpanId: 'a1a2a3a4a5a6a7a8',
  payloadEndpoints: [],
  sampled: true,
  assignedAt: 1n,
  tokenDigest: tokenDigest(`token-${jobId}`),
  ...over,
});

t.test('a decided job: its own token is observed, another is not, an unknown job is untracked', async (t) => {
  const f = new FollowedJobs();
  f.decided(decided(1));
  t.equal(f.check(1, 'token-1'), 'match');
  t.equal(f.check(1, 'token-2'), 'mismatch');
  t.equal(f.check(1, undefined), 'mismatch');
  t.equal(f.check(2, 'token-2'), 'untracked');
  t.same(f.jobContext(1), { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: 'a1a2a3a4a5a6a7a8', sampled: true });
  f.decided(decided(3, { contract: 'none' }));
  t.equal(f.jobContext(3), undefined, 'a job followed for metrics only has no trace context');
  t.equal(f.size, 2);
});

t.test('resumed jobs have no known token until the worker learns one; ended forgets only the same assignment', async (t) => {
  const f = new FollowedJobs();
  f.resumed([{ jobId: 7, jobSpanId: 'b1b2b3b4b5b6b7b8', traceId: 'c'.repeat(32), sampled: false, exported: true }]);
  t.equal(f.check(7, 'anything'), 'unknown', "GitLab's answer decides, in the worker");
  f.tokenLearned(7, tokenDigest('token-7'));
  t.equal(f.check(7, 'token-7'), 'match');
  t.equal(f.check(7, 'other'), 'mismatch');
  f.tokenLearned(8, tokenDigest('token-8'));
  t.equal(f.check(8, 'token-8'), 'untracked', 'a token for a job not followed is not kept');

  f.decided(decided(7, { jobSpanId: 'd1d2d3d4d5d6d7d8' }));
  f.ended(7, 'b1b2b3b4b5b6b7b8');
  t.ok(f.has(7), 'the end of the earlier assignment leaves the new one');
  f.resumed([{ jobId: 7, jobSpanId: 'b1b2b3b4b5b6b7b8', traceId: 'c'.repeat(32), sampled: false, exported: true }]);
  t.equal(f.jobContext(7)?.spanId, 'd1d2d3d4d5d6d7d8', 'a resumed record does not replace a newer decision');
  f.ended(7, 'd1d2d3d4d5d6d7d8');
  t.notOk(f.has(7));
  t.equal(f.check(7, 'token-7'), 'untracked');
});

t.test('forget and clear', async (t) => {
  const f = new FollowedJobs();
  f.decided(decided(1));
  f.decided(decided(2, { tokenDigest: undefined }));
  t.equal(f.check(2, 'x'), 'unknown', 'a payload without a token');
  f.forget(1);
  t.equal(f.check(1, 'token-1'), 'untracked');
  f.clear();
  t.equal(f.size, 0);
  t.equal(f.check(2, 'x'), 'untracked');
});
