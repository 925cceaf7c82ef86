// The GitLab runner API simulator against the upstream behaviour it follows
// (docs/simulators.md): Workhorse long polling and Job Router discovery.
import t from 'tap';
import { GitLabRunnerApiSimulator } from '../../src/lab/gitlab-runner-api.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import { RunnerSimulator } from '../../src/lab/runner.js';

const TOKEN = 'glrt-simulator-test';

function jobRequest(runner: RunnerSimulator, lastUpdate?: string) {
  const body = Buffer.from(JSON.stringify({ token: TOKEN, ...(lastUpdate ? { last_update: lastUpdate } : {}) }));
  return runner.call('POST', '/api/v4/jobs/request', { 'Content-Type': 'application/json', 'Content-Length': body.length }, body);
}

t.test('Workhorse long polling: Rails first, then a watch that Workhorse answers 204 itself', async (t) => {
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken: TOKEN, longPollMs: 60_000 }).start();
  const runner = new RunnerSimulator({ url: gitlab.url, token: TOKEN });
  t.teardown(async () => {
    runner.close();
    await gitlab.stop();
  });
  const first = await jobRequest(runner);
  t.equal(first.status, 204, 'no last_update: Rails answers at once');
  t.equal(first.headers['gitlab-ci-builds-polling'], 'yes');
  const lastUpdate = first.headers['x-gitlab-last-update'];
  t.type(lastUpdate, 'string', "Rails' 204 carries the queue value");

  const watching = jobRequest(runner, String(lastUpdate));
  // Queue the job once the request is being watched (bounded: 5 s at most).
  for (let i = 0; i < 500 && gitlab.watching === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(gitlab.watching, 1, 'an up-to-date last_update is watched');
  gitlab.enqueue(makeJobPayload({ id: 31 }));
  const seen = await watching;
  t.equal(seen.status, 204, 'a change seen while watching: Workhorse answers 204');
  t.equal(seen.headers['x-gitlab-last-update'], undefined, 'without X-GitLab-Last-Update');
  const stale = await jobRequest(runner, String(lastUpdate));
  t.equal(stale.status, 201, 'the queue changed since last_update: Rails hands out the job');
  t.equal(stale.headers['gitlab-ci-builds-polling'], 'yes');

  const timeoutSim = await new GitLabRunnerApiSimulator({ runnerToken: TOKEN, longPollMs: 20 }).start();
  t.teardown(() => timeoutSim.stop());
  const r2 = new RunnerSimulator({ url: timeoutSim.url, token: TOKEN });
  t.teardown(() => r2.close());
  const value = String((await jobRequest(r2)).headers['x-gitlab-last-update']);
  const timedOut = await jobRequest(r2, value);
  t.equal(timedOut.status, 204, 'no change within the polling duration: 204');
  t.equal(timedOut.headers['x-gitlab-last-update'], undefined);
});

t.test('Job Router discovery: 403 for a bad token, 501 without a router, 200 with server_url', async (t) => {
  const plain = await new GitLabRunnerApiSimulator({ runnerToken: TOKEN }).start();
  const routed = await new GitLabRunnerApiSimulator({ runnerToken: TOKEN, jobRouterServerUrl: 'https://kas.example:8150' }).start();
  const runners = [plain, routed].map((g) => new RunnerSimulator({ url: g.url, token: TOKEN }));
  const stranger = new RunnerSimulator({ url: plain.url, token: 'glrt-someone-else' });
  t.teardown(async () => {
    for (const r of [...runners, stranger]) r.close();
    await plain.stop();
    await routed.stop();
  });
  t.match(await runners[0]!.discoverJobRouter(), { status: 501 });
  t.notOk(runners[0]!.routerDiscovery?.serverUrl);
  t.match(await runners[1]!.discoverJobRouter(), { status: 200, serverUrl: 'https://kas.example:8150' });
  t.match(await stranger.discoverJobRouter(), { status: 403 });

  // FF_USE_JOB_ROUTER: discovery once (cached), then job requests over HTTP when there is no router.
  const flagged = new RunnerSimulator({ url: plain.url, token: TOKEN, jobRouter: true });
  t.teardown(() => flagged.close());
  plain.enqueue(makeJobPayload({ id: 41 }));
  t.match(await flagged.requestJob(), { id: 41 });
  t.equal(await flagged.requestJob(), null);
  t.same(
    flagged.sent.map((e) => `${e.method} ${e.path} ${e.status}`),
    ['GET /api/v4/runners/router/discovery 501', 'POST /api/v4/jobs/request 201', 'POST /api/v4/jobs/request 204'],
    'one discovery, then the HTTP fallback',
  );
});
