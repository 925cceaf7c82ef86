// The export pipeline across a restart (docs/security.md#removed-endpoints):
// spans spooled for an endpoint that is not configured any more are replayed
// only for a payload endpoint a journalled job still names (its settings
// rebuilt from the job, never read from disk); any other orphaned spool is
// deleted and its spans counted as dropped (endpoint_removed), never sent.
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { OtlpReceiver } from '../../../src/telemetry/receiver.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { spoolDirFor, spoolDirs } from '../../../src/telemetry/export/span-spool.js';
import { recordEvents, type LogEvent } from '../../support/memory-logger.js';
import { endpointSettings, eventually, makeSpans, metric, resource } from '../../support/export.js';

t.test('after a restart: a journalled job’s payload endpoint replays its spool, a removed one is dropped and counted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-pipeline-'));
  let accept = false;
  const receiver = await new OtlpReceiver({
    behaviour: () => (accept ? { kind: 'ok' } : { kind: 'error', code: status.UNAVAILABLE }),
  }).start();
  t.teardown(() => receiver.stop());
  const slow = { retry: { initialBackoffMs: 5000, maxBackoffMs: 5000 } };
  const payloadEp = endpointSettings('payload', receiver.url, slow);
  // Removed from the configuration since: its spool must not bring it back, credentials and all.
  const removed = endpointSettings('removed', receiver.url.replace('127.0.0.1', 'localhost'), { ...slow, headers: { 'x-tenant': 'a' } });
  const kept = makeSpans(5);
  const before = await ExportPipeline.create({
    endpoints: [],
    spool: { dir, maxBytes: 8 << 20 },
    metrics: createExportMetrics(new Registry()),
    log: () => undefined,
  });
  before.submit(kept, resource, [payloadEp]);
  before.submit(makeSpans(3), resource, [removed]);
  await before.shutdown(200);
  t.equal(receiver.spans.length, 0, 'nothing delivered while the collector refused');
  t.equal(spoolDirs(dir).length, 2, 'both spooled');

  accept = true;
  const logs: LogEvent[] = [];
  const registry = new Registry();
  const after = await ExportPipeline.create({
    endpoints: [],
    spool: { dir, maxBytes: 8 << 20 },
    metrics: createExportMetrics(registry),
    log: recordEvents(logs),
  });
  t.teardown(() => after.shutdown(500));
  t.same(after.health(), [], 'nothing rebuilt from disk by itself');
  after.settleOrphans([payloadEp]);
  await receiver.waitForSpans(5, 10_000);
  t.same(new Set(receiver.spans.map((s) => s.spanId)), new Set(kept.map((s) => s.spanId)), 'the payload endpoint’s spans, once each');
  t.match(
    logs.filter((l) => l.event === 'spool_endpoint_removed'),
    [{ level: 'warn', event: 'spool_endpoint_removed', endpoint: 'removed', spans: 3 }],
    'the removed endpoint is reported once (beside the replay of the other)',
  );
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { endpoint: 'removed', reason: 'endpoint_removed' }), 3, 'counted');
  t.same(spoolDirs(dir), [spoolDirFor(dir, payloadEp)], "the removed endpoint's spool is gone");
  t.same(
    after.health().map((h) => h.name),
    ['payload'],
    'only the journalled payload endpoint was rebuilt',
  );
  await eventually(async () => (await metric(registry, 'gitlab_otel_spans_exported_total')) >= 5, 5000, 'exports counted');
  t.equal(await metric(registry, 'gitlab_otel_spans_exported_total', { endpoint: 'payload' }), 5);
  t.equal(receiver.spans.length, 5, 'nothing of the removed endpoint was sent');
});
