// job-tokens: which exchanges present a job's own token (docs/security.md#job-tokens).
import t from 'tap';
import { JobTokens, presentedToken } from '../../../src/runner-proxy/job/job-tokens.js';

t.test('JobTokens learns, checks and forgets per job', async (t) => {
  const tokens = new JobTokens();
  t.equal(tokens.check(1, 'glcbt-a'), 'unknown', 'a job never learnt is unknown, not a mismatch');
  tokens.learn(1, 'glcbt-a');
  tokens.learn(2, 'glcbt-b');
  t.equal(tokens.size, 2);
  t.equal(tokens.check(1, 'glcbt-a'), 'match');
  t.equal(tokens.check(1, 'glcbt-b'), 'mismatch', "a neighbour job's token does not pass");
  t.equal(tokens.check(1, undefined), 'mismatch', 'no token presented');
  t.equal(tokens.check(1, ''), 'mismatch', 'an empty token presented');
  t.equal(tokens.check(1, 'glcbt-a '), 'mismatch', 'compared exactly');
  tokens.learn(1, 'glcbt-c');
  t.equal(tokens.check(1, 'glcbt-a'), 'mismatch', 'learning again replaces the token');
  t.equal(tokens.check(1, 'glcbt-c'), 'match');
  tokens.forget(1);
  t.equal(tokens.size, 1);
  t.equal(tokens.check(1, 'glcbt-c'), 'unknown', 'forgotten');
  t.equal(tokens.check(2, 'glcbt-b'), 'match', 'other jobs are untouched');
});

t.test('JobTokens keeps digests, not the tokens', async (t) => {
  const tokens = new JobTokens();
  tokens.learn(7, 'glcbt-secret-value');
  const seen: string[] = [];
  for (const v of Object.values(tokens as unknown as Record<string, unknown>)) {
    if (v instanceof Map) for (const d of v.values()) seen.push(Buffer.from(d as Buffer).toString('latin1'));
  }
  t.equal(seen.length, 1, 'one entry held');
  t.notOk(seen[0]!.includes('glcbt-secret-value'), 'the token itself is not held');
});

t.test('holderOf names the followed job a presented token belongs to (artifact downloads)', async (t) => {
  const tokens = new JobTokens();
  t.equal(tokens.holderOf('glcbt-a'), undefined, 'nobody followed');
  tokens.learn(1, 'glcbt-a');
  tokens.learn(2, 'glcbt-b');
  t.equal(tokens.holderOf('glcbt-b'), 2);
  t.equal(tokens.holderOf('glcbt-a'), 1);
  t.equal(tokens.holderOf('glcbt-c'), undefined, 'a token no followed job holds');
  t.equal(tokens.holderOf(undefined), undefined, 'none presented');
  t.equal(tokens.holderOf(''), undefined, 'an empty one');
  tokens.forget(2);
  t.equal(tokens.holderOf('glcbt-b'), undefined, 'forgotten with its job');
});

t.test('presentedToken reads the token the way GitLab does', async (t) => {
  t.equal(presentedToken('from-body', 'from-request'), 'from-body', "the body's token comes first");
  t.equal(presentedToken('', 'from-request'), 'from-request', 'an empty body token falls back');
  t.equal(presentedToken(42, 'from-request'), 'from-request', 'a non-string body token is ignored');
  t.equal(presentedToken(undefined, ''), undefined, 'nothing presented');
  t.equal(presentedToken(undefined, undefined), undefined);
});
