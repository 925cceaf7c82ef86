// Connection resets: a TCP front before the collector cuts the first
// connections mid-request (as a crashing collector or a load balancer does);
// the exports are retried and every span arrives exactly once.
import t from 'tap';
import net from 'node:net';
import { Registry } from 'prom-client';
import { OtlpReceiver } from '../../../src/telemetry/receiver.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { endpointSettings, eventually, makeSpans, metric, resource } from '../../support/export.js';

/** Forwards TCP to `target`, destroying the first `cut` connections once they have sent `afterBytes`. */
async function resettingFront(
  target: number,
  cut: number,
  afterBytes: number,
): Promise<{ port: number; cuts: () => number; close(): Promise<void> }> {
  let cuts = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(upstream);
    const doomed = cuts < cut;
    let seen = 0;
    client.on('data', (chunk) => {
      seen += chunk.length;
      if (doomed && seen >= afterBytes) {
        cuts++;
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    cuts: () => cuts,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

t.test('connection resets mid-export are retried; every span arrives exactly once', async (t) => {
  const receiver = await new OtlpReceiver().start();
  // gRPC's preface and settings come first; cutting after 200 bytes lands inside the Export call.
  const front = await resettingFront(receiver.port, 2, 200);
  const registry = new Registry();
  const ep = endpointSettings('reset', `http://127.0.0.1:${front.port}`);
  const pipeline = await ExportPipeline.create({ endpoints: [ep], metrics: createExportMetrics(registry), log: () => {} });
  t.teardown(async () => {
    await pipeline.shutdown(1000);
    await front.close();
    await receiver.stop();
  });
  const spans = makeSpans(40);
  pipeline.submit(spans, resource, [ep]);
  await receiver.waitForSpans(40, 15_000);
  await pipeline.flush(2000);
  t.equal(front.cuts(), 2, 'two connections were reset');
  t.same(new Set(receiver.spans.map((s) => s.spanId)), new Set(spans.map((s) => s.spanId)), 'every span arrived');
  t.equal(receiver.spans.length, 40, 'no duplicates');
  await eventually(async () => (await metric(registry, 'gitlab_otel_spans_exported_total', { endpoint: 'reset' })) === 40);
  t.ok((await metric(registry, 'gitlab_otel_spans_retried_total', { endpoint: 'reset' })) > 0, 'retries were counted');
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { endpoint: 'reset' }), 0, 'nothing dropped');
});
