// The client's pure rate-limit logic (Retry-After / RateLimit-Reset, the
// header-less 429 backoff per episode, capped at GitLab's 60 s window), then
// the client itself against the GitLab REST simulator on loopback.
import t from 'tap';
import {
  createGitLabClient,
  describeError,
  HeaderlessBackoff,
  headerlessBackoffMs,
  RATE_LIMIT_WINDOW_MS,
  retryDelayMs,
  statusOf,
  type GitLabClient,
  type GitLabClientOptions,
} from '../../src/onboarding/gitlab-client.js';
import { GitLabRestSimulator } from '../support/gitlab-rest.js';

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

// The client at its edge: a real Gitbeaker client against the GitLab REST
// simulator on loopback, with the simulator's fault injection.
const sim = new GitLabRestSimulator({
  users: { 'tok-dev': { id: 1, username: 'dev' } },
  projects: [{ id: 1, path_with_namespace: 'acme/shop', project_access_level: 30 }],
});
const running = await sim.start();
t.teardown(() => running.stop());
const client = (extra: Partial<GitLabClientOptions> = {}): GitLabClient =>
  createGitLabClient({ url: running.url, token: 'tok-dev', timeoutMs: 10_000, retries: 2, minBackoffMs: 1, ...extra });

t.test('a read that meets a 502 is retried and succeeds', async (t) => {
  sim.faults.push({ method: 'GET', route: '/projects/:id', kind: '502' });
  const c = client();
  const project = (await c.api.Projects.show(1)) as { path_with_namespace: string };
  t.equal(project.path_with_namespace, 'acme/shop');
  t.same(c.stats, { requests: 2, rateLimited: 0, retries: 1 });
});

t.test('a write whose response is lost is WRITE_OUTCOME_UNKNOWN, never sent twice', async (t) => {
  sim.faults.push({ method: 'POST', route: '/projects/:id/issues', kind: '502-after-write' });
  const c = client();
  await t.rejects(c.api.Issues.create(1, 'Add OpenTelemetry instrumentation'), {
    code: 'WRITE_OUTCOME_UNKNOWN',
    status: 502,
    message: /^POST projects\/1\/issues: outcome unknown \(HTTP 502\)/,
  });
  t.equal(c.stats.requests, 1, 'not retried');
  t.equal(sim.issues.get(1)?.length, 1, 'GitLab did perform it: the caller must look before sending again');
});

t.test('a 429 is waited out as Retry-After says, without using up a retry', async (t) => {
  sim.faults.push({ method: 'GET', route: '/projects/:id', kind: '429', retryAfterSeconds: 1 });
  const c = client({ retries: 0 });
  t.ok(await c.api.Projects.show(1));
  t.same(c.stats, { requests: 2, rateLimited: 1, retries: 1 });
});

t.test('a 429 after the last 5xx retry is still waited out', async (t) => {
  sim.faults.push({ method: 'GET', route: '/projects/:id', kind: '502' });
  sim.faults.push({ method: 'GET', route: '/projects/:id', kind: '429', retryAfterSeconds: 1 });
  const c = client({ retries: 1 });
  t.ok(await c.api.Projects.show(1));
  t.same(c.stats, { requests: 3, rateLimited: 1, retries: 2 });
});

t.test('a 429 asking for longer than --max-wait fails RATE_LIMITED at once', async (t) => {
  sim.faults.push({ method: 'GET', route: '/projects/:id', kind: '429', retryAfterSeconds: 30 });
  const c = client({ maxWaitMs: 1000 });
  await t.rejects(c.api.Projects.show(1), { code: 'RATE_LIMITED', status: 429 });
  t.equal(c.stats.requests, 1);
});

t.test('HTTP errors: stable codes, and no token in what is thrown', async (t) => {
  const missing = await client()
    .api.Projects.show(404)
    .then(
      () => undefined,
      (err: unknown) => err,
    );
  t.equal(statusOf(missing), 404);
  t.match(describeError(missing), { code: 'NOT_FOUND', status: 404, message: /^HTTP 404: / });
  const request = (missing as { cause?: { request?: Request } }).cause?.request;
  t.ok(request, 'the request is kept for the caller');
  t.equal(request!.headers.get('private-token'), null, 'rebuilt without the token');
  const rejected = await client({ token: 'wrong' })
    .api.Projects.show(1)
    .then(
      () => undefined,
      (err: unknown) => err,
    );
  t.match(describeError(rejected), { code: 'AUTH_REJECTED', status: 401 });
  t.notMatch(JSON.stringify(describeError(rejected)), /wrong/);
});

t.test('a 200 that is not JSON is MALFORMED_RESPONSE, not retried', async (t) => {
  sim.faults.push({ method: 'GET', route: '/projects/:id', kind: 'malformed' });
  const c = client();
  await t.rejects(c.api.Projects.show(1), { code: 'MALFORMED_RESPONSE' });
  t.equal(c.stats.requests, 1);
});

t.test('a closed port: reads fail REQUEST_FAILED after their retries', async (t) => {
  const closed = new GitLabRestSimulator();
  const gone = await closed.start();
  const url = gone.url;
  await gone.stop();
  const c = createGitLabClient({ url, token: 'tok-dev', timeoutMs: 5000, retries: 1, minBackoffMs: 1 });
  await t.rejects(c.api.Projects.show(1), { code: 'REQUEST_FAILED', message: /connection failed \(ECONNREFUSED\) after retries/ });
  t.equal(c.stats.requests, 2);
});
