// The lab assembly (src/lab/lab.ts): the GitLab simulator, the real proxy, an
// OTLP receiver as its collector and runner simulators, all on loopback. What
// the lab itself promises: runner() goes through the proxy and its spans reach
// the lab's receiver, directRunner() goes to GitLab alone, runLabJob runs a
// queued job to its final update, and stop() closes every port.
import t from 'tap';
import { runLabJob, startLab } from '../../src/lab/lab.js';

const LOOPBACK = /^http:\/\/127\.0\.0\.1:\d+$/;

async function refused(url: string): Promise<boolean> {
  try {
    await fetch(`${url}/api/v4/jobs/request`, { method: 'POST', signal: AbortSignal.timeout(5_000) });
    return false;
  } catch {
    return true;
  }
}

t.test('runner() goes through the proxy to the receiver; directRunner() reaches GitLab alone', async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  t.match(lab.proxyUrl, LOOPBACK, 'the proxy listens on loopback');
  t.match(lab.gitlab.url, LOOPBACK);
  t.ok(lab.receiver, 'a receiver by default');
  t.match(lab.runnerToken, /^glrt-[0-9a-f]{24}$/);

  const direct = await runLabJob(lab, lab.directRunner(), { payload: { id: 501 }, scenario: 'success' });
  t.equal(direct.result.finalStatus, 200);
  t.equal(direct.sim.state, 'success');
  t.ok(Buffer.concat(direct.sim.trace).equals(direct.log.bytes), 'GitLab got the whole log');

  const proxied = await runLabJob(lab, lab.runner(), { payload: { id: 502 }, scenario: 'script-failure' });
  t.equal(proxied.result.finalStatus, 200);
  t.equal(proxied.sim.state, 'failed', "the log's outcome is the job's final state");
  t.equal(proxied.received.id, 502);
  t.ok(Buffer.concat(proxied.sim.trace).equals(proxied.log.bytes), 'every log byte forwarded by the proxy');

  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution' && x.attributes['ci.job.id'] === 502), 10_000);
  const jobIds = lab.receiver!.spans.filter((s) => s.name === 'job_execution').map((s) => s.attributes['ci.job.id']);
  t.same(jobIds, [502], 'only the proxied job has a span; the direct one never passed the proxy');
});

t.test('receiver: false leaves the proxy without a collector; jobs still run; stop() closes every port', async (t) => {
  const lab = await startLab({ receiver: false });
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await lab.stop();
  });
  t.equal(lab.receiver, undefined);
  const job = await runLabJob(lab, lab.runner(), { payload: { id: 601 } });
  t.equal(job.result.finalStatus, 200);
  t.equal(job.sim.state, 'success');
  t.notOk(await refused(lab.proxyUrl), 'the proxy answers while the lab runs');
  await lab.stop();
  stopped = true;
  t.ok(await refused(lab.proxyUrl), 'the proxy port is closed');
  t.ok(await refused(lab.gitlab.url), 'the GitLab simulator port is closed');
});
