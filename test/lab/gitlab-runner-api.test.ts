// The GitLab runner API simulator against the upstream behaviour it follows
// (docs/simulators.md): Workhorse long polling, Job Router discovery, artifact downloads.
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

t.test(
  "artifact downloads: a running job's token, 403 unknown job, 404 no archive, 302 to object storage on direct_download",
  async (t) => {
    const gitlab = await new GitLabRunnerApiSimulator({ runnerToken: TOKEN, artifactsInObjectStorage: true }).start();
    const runner = new RunnerSimulator({ url: gitlab.url, token: TOKEN });
    t.teardown(async () => {
      runner.close();
      await gitlab.stop();
    });
    gitlab.enqueue(makeJobPayload({ id: 41 }));
    const job = (await runner.requestJob())!;
    gitlab.artifactSizes.set(40, 1000);
    const get = (path: string, token?: string) => runner.call('GET', path, token ? { 'JOB-TOKEN': token } : {});
    t.equal((await get('/api/v4/jobs/40/artifacts')).status, 401, 'no token');
    t.equal((await get('/api/v4/jobs/40/artifacts', 'glcbt-nobody')).status, 401, 'not a running job’s token');
    t.equal((await get(`/api/v4/jobs/40/artifacts?token=${job.token}`)).status, 200, 'the token as a query parameter');
    t.equal((await get('/api/v4/jobs/39/artifacts', job.token)).status, 403, 'an unknown job');
    t.equal((await get('/api/v4/jobs/41/artifacts', job.token)).status, 404, 'a job without artifacts');
    const plain = await get('/api/v4/jobs/40/artifacts', job.token);
    t.equal(plain.rawBody.length, 1000, 'proxied by GitLab without direct_download');
    const redirect = await get('/api/v4/jobs/40/artifacts?direct_download=true', job.token);
    t.equal(redirect.status, 302);
    t.equal(redirect.headers.location, `${gitlab.url}/object-storage/artifacts/40`);
    t.match(redirect.rawBody.toString(), /moved temporarily/);
    const stored = await runner.call('GET', '/object-storage/artifacts/40', {});
    t.equal(stored.rawBody.length, 1000, 'object storage serves it without a token (a presigned URL)');

    // The runner's downloader: the probe and the fallback are redirected, the archive comes from storage.
    const direct = await runner.downloadArtifacts(job, 40, { directDownload: true });
    t.same(
      direct.viaRunnerUrl.map((e) => [e.path, e.status]),
      [
        ['/api/v4/jobs/40/artifacts?direct_download=true', 302],
        ['/api/v4/jobs/40/artifacts?direct_download=true', 302],
      ],
    );
    t.equal(direct.body.length, 1000);
    t.equal(direct.viaRunnerUrl[0]!.requestHeaders['job-token'], job.token, "the running job's own token");
    const without = await new GitLabRunnerApiSimulator({ runnerToken: TOKEN }).start();
    t.teardown(() => without.stop());
    const r2 = new RunnerSimulator({ url: without.url, token: TOKEN });
    t.teardown(() => r2.close());
    without.enqueue(makeJobPayload({ id: 43 }));
    const j2 = (await r2.requestJob())!;
    without.artifactSizes.set(42, 10);
    t.equal(
      (await r2.downloadArtifacts(j2, 42, { directDownload: true })).viaRunnerUrl.length,
      1,
      'no object storage: one GET, the archive',
    );
    t.equal((await r2.call('GET', '/object-storage/artifacts/42', {})).status, 404, 'and no object-storage path');
  },
);
