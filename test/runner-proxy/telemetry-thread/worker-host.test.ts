// The forwarding thread's side of the telemetry worker, with a real worker: the bound on bytes in
// flight, drops while the worker is down, the stop (docs/architecture.md#telemetry-thread).
import t from 'tap';
import { Registry } from 'prom-client';
import { envDefaults } from '../../../src/runner-proxy/config/load.js';
import { validateConfig } from '../../../src/runner-proxy/config/schema.js';
import { FollowedJobs } from '../../../src/runner-proxy/telemetry-thread/followed-jobs.js';
import { TelemetryWorkerHost } from '../../../src/runner-proxy/telemetry-thread/worker-host.js';
import { eventually } from '../../support/export.js';
import { memoryLogger } from '../../support/memory-logger.js';

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
