// The client's pure rate-limit logic: Retry-After / RateLimit-Reset, and the
// header-less 429 backoff (per episode, capped at GitLab's 60 s window).
import t from 'tap';
import { HeaderlessBackoff, headerlessBackoffMs, RATE_LIMIT_WINDOW_MS, retryDelayMs } from '../../src/onboarding/gitlab-client.js';

t.test('Retry-After and RateLimit-Reset', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  t.equal(retryDelayMs(new Headers({ 'retry-after': '7' }), now), 7000);
  t.equal(retryDelayMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }), now), 5000);
  t.equal(retryDelayMs(new Headers({ 'ratelimit-reset': String(now / 1000 + 3) }), now), 3000);
  t.equal(retryDelayMs(new Headers({}), now), undefined);
});

t.test('a 429 without headers backs off exponentially up to the 60 s window', async (t) => {
  const waits = Array.from({ length: 9 }, (_, i) => headerlessBackoffMs(i, 1000, 0));
  t.same(waits, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  t.equal(RATE_LIMIT_WINDOW_MS, 60_000);
  t.equal(headerlessBackoffMs(0, 1000, 0.999), 1999, 'jitter adds at most one base');
  t.equal(headerlessBackoffMs(500, 1000, 0), 60_000, 'no overflow for long streaks');
});

t.test('the header-less backoff doubles per episode, not per concurrent 429', async (t) => {
  const b = new HeaderlessBackoff(1000);
  // 16 requests in flight, sent at 0..15 ms, all answered 429 at 20 ms: one pause.
  t.equal(b.onLimited(0, 20, 0), 1000);
  for (let sent = 1; sent < 16; sent++) t.equal(b.onLimited(sent, 21, 0), null, `request sent at ${sent} ms: same episode`);
  b.onAnswered(5); // a late success of a request sent before the pause says nothing about the limit now
  // After the pause: the first request is refused again → twice as long; its neighbours join that episode.
  t.equal(b.onLimited(1025, 1030, 0), 2000);
  t.equal(b.onLimited(1026, 1031, 0), null);
  t.equal(b.onLimited(3040, 3045, 0), 4000);
  b.onAnswered(7100); // a request sent after the last pause began went through: the limit is lifted
  t.equal(b.onLimited(7200, 7210, 0), 1000, 'a new streak starts at the base');
});
