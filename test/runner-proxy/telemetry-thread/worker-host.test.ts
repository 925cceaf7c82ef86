// The forwarding thread's side of the telemetry worker, with a real worker: the bound on bytes in
// flight, drops while the worker is down, the stop, a start that fails (first or after a crash), and
// /metrics from the last snapshot when the worker does not answer in time (docs/architecture.md#telemetry-thread).
// The failures are made by the worker's test-only environment variables, copied into each worker's
// environment when it is constructed (node:worker_threads), so a test sets them just before the start it means.
import t, { type Test } from 'tap';
import { Registry } from 'prom-client';
import type { Logger } from '../../../src/log.js';
import { startLab, runLabJob } from '../../../src/lab/lab.js';
import { envDefaults } from '../../../src/runner-proxy/config/load.js';
import { validateConfig } from '../../../src/runner-proxy/config/schema.js';
import { FollowedJobs } from '../../../src/runner-proxy/telemetry-thread/followed-jobs.js';
import { METRICS_WAIT_MS, TelemetryWorkerHost } from '../../../src/runner-proxy/telemetry-thread/worker-host.js';
import { eventually } from '../../support/export.js';
import { memoryLogger } from '../../support/memory-logger.js';
import { parseExposition, type Exposition } from '../../support/prometheus-text.js';

const CRASH_ENV = 'GITLAB_OTEL_TEST_WORKER_CRASH';
const START_FAIL_ENV = 'GITLAB_OTEL_TEST_WORKER_START_FAIL';
const STALL_AFTER_ENV = 'GITLAB_OTEL_TEST_WORKER_METRICS_STALL_AFTER';
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const NEXT_TRACE = '0af7651916cd43dd8448eb211c80319c';

const config = validateConfig(
  { upstream: { url: 'http://127.0.0.1:9' }, admin: null, telemetry: { thread: 'worker' }, metrics: { enabled: false } },
  envDefaults({}).defaults,
);

async function dropped(registry: Registry, reason: string): Promise<number> {
  const json = await registry.getMetricsAsJSON();
  const family = json.find((m) => m.name === 'gitlab_otel_telemetry_worker_dropped_total');
  return family?.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

const patch = (jobId: number, bytes: number) => {
  const body = new ArrayBuffer(bytes);
  const transfer: ArrayBuffer[] = [body];
  return [{ type: 'trace-patch' as const, jobId, body, status: 202, at: 1n }, transfer, bytes] as const;
};

t.test('bytes in flight are bounded: past the bound posts are dropped and counted, and accepted again once handled', async (t) => {
  const registry = new Registry();
  const log = memoryLogger();
  const host = new TelemetryWorkerHost({ config, log, registry, followed: new FollowedJobs(), maxInFlightBytes: 10_000 });
  await host.start();
  t.teardown(() => host.stop(1000));
  t.equal(host.state, 'up');
  // One synchronous burst: the worker's progress reports cannot arrive in between.
  const accepted = [1, 2, 3, 4, 5].map(() => host.post(...patch(99, 4000)));
  t.same(accepted, [true, true, false, false, false], 'two fit in 10 000 bytes, three do not');
  t.equal(host.inFlightBytes, 8000);
  t.equal(await dropped(registry, 'buffered_bytes'), 3);
  await eventually(() => host.inFlightBytes === 0, 10_000, 'the worker handled the two');
  t.equal(host.post(...patch(99, 4000)), true, 'room again');
  await host.flush(1000);
  t.ok(host.health, 'a health snapshot arrived');
  t.same(host.health?.health.endpoints, [], 'no endpoint configured');
});

t.test('stopped: nothing is posted, each call counted as worker_down; stop is idempotent', async (t) => {
  const registry = new Registry();
  const host = new TelemetryWorkerHost({ config, log: memoryLogger(), registry, followed: new FollowedJobs(), maxInFlightBytes: 1 << 20 });
  await host.start();
  await host.stop(1000);
  await host.stop(1000);
  t.equal(host.state, 'stopped');
  t.equal(host.post(...patch(1, 10)), false);
  t.equal(host.post({ type: 'track', job: undefined as never }), false);
  t.equal(await dropped(registry, 'worker_down'), 2);
  t.equal(await host.metrics(100), undefined, 'no metrics snapshot was ever taken');
  t.equal(await host.ready(10), false, 'not up');
});

t.test('a first start that fails rejects with the reason, is logged with its code, and is not restarted', async (t) => {
  for (const [mode, code, reason] of [
    ['report', 'TELEMETRY_WORKER_START_FAILED', 'telemetry side start failure requested by a test'],
    ['throw', 'TELEMETRY_WORKER_FAILED', 'failed: telemetry worker start failure requested by a test'],
    ['hang', 'TELEMETRY_WORKER_START_FAILED', 'not ready within 1000 ms'],
  ] as const) {
    const registry = new Registry();
    const log = memoryLogger();
    const host = new TelemetryWorkerHost({
      config,
      log,
      registry,
      followed: new FollowedJobs(),
      maxInFlightBytes: 1 << 20,
      // Only the worker that never gets ready meets this bound (the others fail on their own, whenever that is).
      ...(mode === 'hang' ? { startTimeoutMs: 1000 } : {}),
    });
    process.env[START_FAIL_ENV] = mode;
    // The worker is constructed (and its environment copied) before start() returns its promise.
    const starting = host.start();
    delete process.env[START_FAIL_ENV];
    await t.rejects(starting, { message: `telemetry worker did not start: ${reason}` }, `${mode}: start() says why`);
    await eventually(() => host.state === 'down', 10_000, `${mode}: the worker exited`);
    t.match(
      log.lines.filter((l) => typeof l.fields?.code === 'string'),
      [{ level: 'error', fields: { code } }],
      `${mode}: one line, with its stable code`,
    );
    t.notOk(
      log.lines.some((l) => l.fields?.code === 'TELEMETRY_WORKER_EXITED'),
      `${mode}: no restart announced: the proxy's start fails instead`,
    );
    await host.stop(0);
    t.equal(host.state, 'stopped');
  }
});

t.test('restarts that fail: forwarding goes on, each failure logged and counted, backoff doubles, the next job is traced', async (t) => {
  t.teardown(() => {
    delete process.env[CRASH_ENV];
    delete process.env[START_FAIL_ENV];
  });
  const log = memoryLogger();
  // Two failed restarts, one of each kind, then a good one: each failure's own log line (logged before the
  // dead worker's exit, so before its successor is constructed) sets what the next start does.
  const hooked: Logger = (level, msg, fields) => {
    log(level, msg, fields);
    if (fields?.code === 'TELEMETRY_WORKER_START_FAILED') process.env[START_FAIL_ENV] = 'throw';
    if (fields?.code === 'TELEMETRY_WORKER_FAILED' && msg.includes('start failure requested by a test')) delete process.env[START_FAIL_ENV];
  };
  process.env[CRASH_ENV] = '1';
  const lab = await startLab({ log: hooked, proxyConfig: { telemetry: { thread: 'worker' } } });
  t.teardown(() => lab.stop());
  const worker = lab.proxy.telemetryWorker!;
  const runner = lab.runner();
  const job = await runLabJob(lab, runner, {
    payload: { id: 5101, contract: { kind: 'tracing', traceId: TRACE } },
    scenario: 'success',
    patchSizes: [1000, 1000, 1000, 1_000_000],
    beforePatch: async (i) => {
      if (i === 1) {
        process.env[START_FAIL_ENV] = 'report';
        worker.testCrash();
        await eventually(() => process.env[START_FAIL_ENV] === undefined, 20_000, 'both failed restarts happened');
        // PATCH 2 goes while the third restart waits out its backoff: forwarded, not observed.
      }
      if (i === 3) t.ok(await worker.ready(20_000), 'the third restart is up while the job goes on');
    },
  });
  t.equal(job.result.finalStatus, 200, 'the job finished normally');
  t.same(lab.gitlab.traceOf(5101), job.log.bytes, 'GitLab has every byte of the log, unchanged');
  t.equal(job.received.variables.TRACEPARENT?.slice(3, 35), TRACE, 'the runner got the edited payload before the crash');

  const events = log.lines
    .filter((l) => ['TELEMETRY_WORKER_FAILED', 'TELEMETRY_WORKER_START_FAILED', 'TELEMETRY_WORKER_EXITED'].includes(String(l.fields?.code)))
    .map((l) => ({ code: l.fields?.code, restartInMs: l.fields?.restart_in_ms, msg: l.msg }));
  t.match(
    events,
    [
      { code: 'TELEMETRY_WORKER_FAILED', msg: /crash requested by a test/ },
      { code: 'TELEMETRY_WORKER_EXITED', restartInMs: 250 },
      { code: 'TELEMETRY_WORKER_START_FAILED', msg: /telemetry side start failure requested by a test/ },
      { code: 'TELEMETRY_WORKER_EXITED', restartInMs: 500 },
      { code: 'TELEMETRY_WORKER_FAILED', msg: /start failure requested by a test/ },
      { code: 'TELEMETRY_WORKER_EXITED', restartInMs: 1000 },
    ],
    'the crash, then each failed restart: logged with its stable code, the backoff doubling',
  );
  t.equal(events.length, 6, 'nothing else');
  const admin = `http://127.0.0.1:${lab.proxy.adminAddress!.port}`;
  const metrics = await scrape(t, admin);
  t.equal(seriesValue(metrics, 'gitlab_otel_telemetry_worker_restarts_total'), 3, 'every restart counted, the failed ones too');
  const health = (await (await fetch(`${admin}/healthz`, { signal: AbortSignal.timeout(10_000) })).json()) as Record<string, unknown>;
  t.match(health, { status: 'ok', telemetry_worker: 'up' }, '/healthz: up again');

  const next = await runLabJob(lab, runner, {
    payload: { id: 5102, contract: { kind: 'tracing', traceId: NEXT_TRACE } },
    scenario: 'success',
  });
  t.equal(next.result.finalStatus, 200);
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution' && x.traceId === NEXT_TRACE), 10_000);
  t.equal(
    lab.receiver!.spans.filter((s) => s.traceId === NEXT_TRACE).length,
    1 + next.log.sections.length,
    'the job after the restarts: its job span and every stage span',
  );
});

t.test('/metrics: fresh while the worker answers; its last snapshot, with its age, once it stops answering', async (t) => {
  // This worker answers the first metrics request and none after.
  process.env[STALL_AFTER_ENV] = '1';
  t.teardown(() => delete process.env[STALL_AFTER_ENV]);
  const lab = await startLab({ proxyConfig: { telemetry: { thread: 'worker' } } });
  delete process.env[STALL_AFTER_ENV];
  t.teardown(() => lab.stop());
  const admin = `http://127.0.0.1:${lab.proxy.adminAddress!.port}`;
  const runner = lab.runner();
  const runTracedJob = async (id: number, traceId: string): Promise<void> => {
    const job = await runLabJob(lab, runner, { payload: { id, contract: { kind: 'tracing', traceId } }, scenario: 'success' });
    t.equal(job.result.finalStatus, 200);
    await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution' && x.traceId === traceId), 10_000);
    // A round trip through the worker: it has counted the job it exported.
    await lab.proxy.pipeline.flush(2000);
  };
  const observedSince = Date.now();

  await runTracedJob(5111, TRACE);
  const fresh = await scrape(t, admin);
  t.equal(seriesValue(fresh, 'gitlab_otel_jobs_total', { contract: 'tracing', result: 'success' }), 1, "answered: the worker's count now");
  t.equal(seriesValue(fresh, 'ci_job_duration_count'), 1, "answered: the worker's CI/CD text now");
  const freshAge = seriesValue(fresh, 'gitlab_otel_telemetry_snapshot_age_seconds', { snapshot: 'metrics' });
  t.ok(
    freshAge !== undefined && freshAge >= 0 && freshAge < METRICS_WAIT_MS / 1000,
    `answered: the snapshot is this scrape's (${freshAge} s)`,
  );

  await runTracedJob(5112, NEXT_TRACE);
  const stale = await scrape(t, admin);
  t.same(uniqueNames(stale), allNames(stale), 'every family once');
  t.equal(
    seriesValue(stale, 'gitlab_otel_proxy_requests_total', { route: 'job_request', status: '201' }),
    2,
    "the forwarding thread's own figures are current",
  );
  t.equal(
    seriesValue(stale, 'gitlab_otel_jobs_total', { contract: 'tracing', result: 'success' }),
    1,
    "the worker's figures are the last snapshot's, though it has since ended and exported the second job",
  );
  t.equal(seriesValue(stale, 'ci_job_duration_count'), 1, "the CI/CD text is the last snapshot's too");
  const staleAge = seriesValue(stale, 'gitlab_otel_telemetry_snapshot_age_seconds', { snapshot: 'metrics' });
  // The snapshot predates this scrape, which waited METRICS_WAIT_MS for an answer (less timer and clock rounding),
  // and it cannot be older than this test.
  t.ok(staleAge !== undefined && staleAge >= (0.9 * METRICS_WAIT_MS) / 1000, `not answered: the age covers the wait (${staleAge} s)`);
  t.ok(staleAge !== undefined && staleAge <= (Date.now() - observedSince) / 1000, 'and no more than the test has run');
  const healthAge = seriesValue(stale, 'gitlab_otel_telemetry_snapshot_age_seconds', { snapshot: 'health' });
  t.ok(healthAge !== undefined && healthAge >= 0, 'the health snapshot (still posted each second) has an age');
  t.equal(lab.proxy.telemetryWorker!.state, 'up', 'a worker slow to answer is not a dead one');
  t.equal(seriesValue(stale, 'gitlab_otel_telemetry_worker_restarts_total'), 0);
});

async function scrape(t: Test, admin: string): Promise<Exposition> {
  const res = await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(10_000) });
  t.equal(res.status, 200, '/metrics answers');
  return parseExposition(await res.text());
}

function seriesValue(exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  return exposition.series.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

const allNames = (e: Exposition): string[] => e.families.map((f) => f.name).sort();
const uniqueNames = (e: Exposition): string[] => [...new Set(allNames(e))];
