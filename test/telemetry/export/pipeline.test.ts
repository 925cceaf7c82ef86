// The export pipeline across a restart: spans spooled for an endpoint that is
// not configured any more (a payload endpoint of a job from before the
// restart) are delivered from its spool's endpoint record; an endpoint whose
// settings were never written down (static headers) is reported, not guessed.
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { OtlpReceiver } from '../../../src/telemetry/receiver.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { recordEvents, type LogEvent } from '../../support/memory-logger.js';
import { endpointSettings, eventually, makeSpans, metric, resource } from '../../support/export.js';

t.test('spans spooled for an unconfigured endpoint are delivered after a restart from its endpoint record', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-pipeline-'));
  let accept = false;
  const receiver = await new OtlpReceiver({
    behaviour: () => (accept ? { kind: 'ok' } : { kind: 'error', code: status.UNAVAILABLE }),
  }).start();
  t.teardown(() => receiver.stop());
  const slow = { retry: { initialBackoffMs: 5000, maxBackoffMs: 5000 } };
  const payloadEp = endpointSettings('payload', receiver.url, slow);
  const withHeaders = endpointSettings('tenant', receiver.url.replace('127.0.0.1', 'localhost'), { ...slow, headers: { 'x-tenant': 'a' } });
  const spans = makeSpans(5);
  const before = await ExportPipeline.create({
    endpoints: [],
    spool: { dir, maxBytes: 8 << 20 },
    registry: new Registry(),
    log: () => undefined,
  });
  before.submit(spans, resource, [payloadEp, withHeaders]);
  await before.shutdown(200);
  t.equal(receiver.spans.length, 0, 'nothing delivered while the collector refused');

  accept = true;
  const logs: LogEvent[] = [];
  const registry = new Registry();
  const after = await ExportPipeline.create({ endpoints: [], spool: { dir, maxBytes: 8 << 20 }, registry, log: recordEvents(logs) });
  t.teardown(() => after.shutdown(500));
  await receiver.waitForSpans(5, 10_000);
  t.same(new Set(receiver.spans.map((s) => s.spanId)), new Set(spans.map((s) => s.spanId)), 'the payload endpoint’s spans, once each');
  t.match(logs, [{ event: 'spool_replayed', endpoint: 'payload', spans: 5 }], 'replayed under the recorded name');
  t.ok(
    logs.some((l) => l.event === 'spool_orphans' && l.count === 1),
    'the endpoint with static headers has no record: reported as an orphan',
  );
  t.same(
    after.health().map((h) => h.name),
    ['payload'],
    'only the recorded endpoint was rebuilt',
  );
  // Counted once the collector's answer is in, which may be just after it has the spans.
  await eventually(async () => (await metric(registry, 'gitlab_otel_spans_exported_total')) >= 5, 5000, 'exports counted');
  t.equal(await metric(registry, 'gitlab_otel_spans_exported_total', { endpoint: 'payload' }), 5, 'counted under the recorded name');
});
