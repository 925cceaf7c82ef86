// auth/token.ts: the TokenCache's fetch, early refresh, single flight,
// invalidation and error wrapping, and jwtExpiry. The token source here is a
// counter of calls the test controls (the TokenSource seam the OIDC and GCP
// sources plug into), and the clock is injected, so no wait depends on time.
import t from 'tap';
import { jwtExpiry, TokenCache, TokenError, type IssuedToken, type TokenSource } from '../../../src/telemetry/auth/token.js';

/** A token source whose answers the test releases one by one. */
function controlledSource(): TokenSource & { calls: number; answer(token: IssuedToken | Error): void } {
  const pending: ((v: IssuedToken | Error) => void)[] = [];
  return {
    kind: 'test_source',
    calls: 0,
    fetch() {
      this.calls++;
      return new Promise<IssuedToken>((resolve, reject) => pending.push((v) => (v instanceof Error ? reject(v) : resolve(v))));
    },
    answer(v) {
      const next = pending.shift();
      if (!next) throw new Error('no fetch pending');
      next(v);
    },
  };
}

t.test('one fetch in flight; refreshed in the background at 75–85 % of the lifetime; fetched again once expired', async (t) => {
  let now = 1_000_000;
  const src = controlledSource();
  let refreshes = 0;
  const cache = new TokenCache(src, { now: () => now, random: () => 0, onRefresh: () => refreshes++ });
  t.equal(cache.peek(), undefined);
  const a = cache.get();
  const b = cache.get();
  t.equal(src.calls, 1, 'concurrent callers share one fetch');
  src.answer({ value: 'tok-1', expiresAt: now + 100_000 });
  t.same(await Promise.all([a, b]), ['tok-1', 'tok-1']);
  t.equal(refreshes, 1);
  t.equal(cache.peek(), 'tok-1');

  now += 74_999; // random() = 0: refresh due at 75 % of 100 s
  t.equal(await cache.get(), 'tok-1');
  t.equal(src.calls, 1, 'not yet due');
  now += 1;
  t.equal(await cache.get(), 'tok-1', 'due: the held token is still answered while the refresh runs');
  t.equal(src.calls, 2);
  src.answer({ value: 'tok-2', expiresAt: now + 100_000 });
  await new Promise((r) => setImmediate(r));
  t.equal(cache.peek(), 'tok-2');

  now += 100_000; // expired
  t.equal(cache.peek(), undefined, 'an expired token is never handed out');
  const c = cache.get();
  t.equal(src.calls, 3);
  src.answer({ value: 'tok-3' });
  t.equal(await c, 'tok-3');
  now += 10 ** 12;
  t.equal(await cache.get(), 'tok-3', 'no expiry stated: kept until invalidated');
  t.equal(src.calls, 3);
});

t.test('the jitter moves the refresh point up to 85 %', async (t) => {
  let now = 0;
  const src = controlledSource();
  const cache = new TokenCache(src, { now: () => now, random: () => 1 });
  const p = cache.get();
  src.answer({ value: 'x', expiresAt: 100_000 });
  await p;
  now = 84_999;
  await cache.get();
  t.equal(src.calls, 1);
  now = 85_000;
  await cache.get();
  t.equal(src.calls, 2);
  src.answer({ value: 'y', expiresAt: 200_000 });
});

t.test('invalidate forgets only the rejected token', async (t) => {
  const src = controlledSource();
  const cache = new TokenCache(src);
  const p = cache.get();
  src.answer({ value: 'current' });
  await p;
  cache.invalidate('an-older-token');
  t.equal(cache.peek(), 'current', 'a refusal of an older token does not drop the new one');
  cache.invalidate('current');
  t.equal(cache.peek(), undefined);
  const q = cache.get();
  t.equal(src.calls, 2);
  src.answer({ value: 'next' });
  t.equal(await q, 'next');
  cache.invalidate();
  t.equal(cache.peek(), undefined, 'without an argument: always');
});

t.test('failures: TokenErrors pass through, anything else becomes TOKEN_FETCH_FAILED naming the source, never its text', async (t) => {
  const src = controlledSource();
  const failures: TokenError[] = [];
  const cache = new TokenCache(src, { onFailure: (e) => failures.push(e) });
  const a = cache.get();
  src.answer(new TokenError('TOKEN_RESPONSE_INVALID', 'test_source: no access_token'));
  await t.rejects(a, { code: 'TOKEN_RESPONSE_INVALID', message: 'test_source: no access_token' });
  const b = cache.get();
  t.equal(src.calls, 2, 'a failed fetch is not cached');
  const secret = new TypeError('response contained secret-value-123');
  src.answer(secret);
  const err = await b.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof TokenError);
  t.match(err, { code: 'TOKEN_FETCH_FAILED', message: 'test_source: TypeError' });
  t.notMatch((err as Error).message, /secret-value/);
  t.same(
    failures.map((f) => f.code),
    ['TOKEN_RESPONSE_INVALID', 'TOKEN_FETCH_FAILED'],
  );
});

t.test('jwtExpiry reads exp in milliseconds and nothing else', async (t) => {
  const jwt = (claims: unknown) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
  t.equal(jwtExpiry(jwt({ exp: 1_700_000_000 })), 1_700_000_000_000);
  t.equal(jwtExpiry(jwt({ exp: '1700000000' })), undefined, 'a string exp is not a NumericDate');
  t.equal(jwtExpiry(jwt({ sub: 'x' })), undefined);
  t.equal(jwtExpiry('opaque-token'), undefined);
  t.equal(jwtExpiry('a.!!!not-json.c'), undefined);
});
