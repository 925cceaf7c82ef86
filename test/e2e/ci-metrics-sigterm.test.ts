// The final metric export on SIGTERM (docs/metrics.md#export): the real
// `gitlab-otel runner-proxy` CLI as a child process, with the default 60 s
// export interval (the child sees no OTEL_* variable), runs two jobs and is
// stopped by SIGTERM; the collector must then hold both jobs' metrics, which
// only the final export can have sent.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GitLabRunnerApiSimulator } from '../../src/lab/gitlab-runner-api.js';
import { buildJobLog } from '../../src/lab/job-log-builder.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import { RunnerSimulator } from '../../src/lab/runner.js';
import { OtlpReceiver } from '../../src/telemetry/receiver.js';
import { CI_METRIC } from '../../src/runner-proxy/job/ci-metrics.js';
import { distribution } from '../../src/telemetry/metrics/received-metrics.js';
import { exitOf, freePort, startProxyChild, writeConfig } from '../support/runner-proxy-child.js';

t.test('SIGTERM: the final export carries the jobs run since the last interval, within the flush bound', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-metrics-sigterm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const runnerToken = `glrt-${randomBytes(12).toString('hex')}`;
  const gitlab = await new GitLabRunnerApiSimulator({ runnerToken }).start();
  t.teardown(() => gitlab.stop());
  const collector = await new OtlpReceiver().start();
  t.teardown(() => collector.stop());
  const port = await freePort();
  const config = writeConfig(dir, 'proxy.yml', {
    listen: `127.0.0.1:${port}`,
    admin: null,
    upstream: { url: gitlab.url },
    endpoints: [{ name: 'collector', url: collector.url, compression: 'none', queue: { batch_delay: '20ms' } }],
    shutdown: { grace: '2s', flush_timeout: '3s' },
  });
  const proxy = await startProxyChild(config);
  t.teardown(() => {
    if (proxy.child.exitCode === null) proxy.child.kill('SIGKILL');
  });
  t.match(
    proxy.lines.find((l) => l.msg === 'CI/CD metrics on'),
    { endpoints: 'collector', interval_ms: 60_000 },
    'metrics on, default interval',
  );
  const runner = new RunnerSimulator({ url: `http://127.0.0.1:${port}`, token: runnerToken });
  t.teardown(() => runner.close());
  for (const [id, kind] of [
    [7301, 'tracing'],
    [7302, 'none'],
  ] as const) {
    gitlab.enqueue(
      makeJobPayload({
        id,
        contract: kind === 'none' ? { kind } : { kind, traceId: '4bf92f3577b34da6a3ce929d0e0e4736' },
        timeInQueueSeconds: 2,
      }),
    );
    const log = buildJobLog('success', { start: new Date(), timestamps: true });
    const job = await runner.requestJob();
    if (!job) throw new Error('the runner got no job');
    await runner.runJob(job, { log: log.bytes, state: 'success' });
  }
  await collector.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  t.equal(collector.metrics.exports.length, 0, 'nothing exported before the interval');

  proxy.child.kill('SIGTERM');
  t.equal((await exitOf(proxy, 15_000)).code, 0, 'exit 0');
  const jobs = distribution(collector.metrics.of(CI_METRIC.jobDuration));
  t.equal(jobs?.count, 2, 'both jobs, the one without telemetry too');
  t.equal(distribution(collector.metrics.of(CI_METRIC.jobQueueDuration))?.sum, 4);
});
