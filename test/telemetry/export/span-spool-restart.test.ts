import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { OtlpReceiver } from '../../../src/telemetry/receiver.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { recordEvents, type LogEvent } from '../../support/memory-logger.js';
import { frameRecord, readRecords } from '../../../src/telemetry/export/record-file.js';
import { endpointSettings, eventually, makeSpans, metric, resource } from '../../support/export.js';
import { CHILD_NODE_ARGS } from '../../support/child-node.js';

t.test('kill -9 while spans are queued: the restarted pipeline delivers them once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-spool-'));
  const refusing = await new OtlpReceiver({ behaviour: () => ({ kind: 'error', code: status.UNAVAILABLE }) }).start();
  const child = spawn(process.execPath, [...CHILD_NODE_ARGS, 'test/support/spool-child.ts', refusing.url, dir, '25'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ids = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not report within 30 s')), 30_000);
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(JSON.parse(out.split('\n')[0]!) as string[]);
      }
    });
  });
  await eventually(() => refusing.calls.length >= 1, 10_000, 'child tried to export');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  await refusing.stop();

  // The collector comes back on the same address; the endpoint's settings (its spool identity) are unchanged.
  const sameEp = endpointSettings('primary', refusing.url);
  const logs: LogEvent[] = [];
  const registry = new Registry();
  const again = await new OtlpReceiver({ port: refusing.port }).start();
  const pipeline = await ExportPipeline.create({
    endpoints: [sameEp],
    spool: { dir, maxBytes: 8 << 20 },
    metrics: createExportMetrics(registry),
    log: recordEvents(logs),
  });
  t.teardown(async () => {
    await pipeline.shutdown(1000);
    await again.stop();
  });
  await again.waitForSpans(25, 15_000);
  t.same(new Set(again.spans.map((s) => s.spanId)), new Set(ids));
  t.ok(logs.some((l) => l.event === 'spool_replayed' && l.spans === 25));
  // A marker submitted after the replay is delivered after it (one queue, first in first out),
  // so once the marker is in, any duplicate of the replay would be in too: no time window.
  const marker1 = makeSpans(1);
  pipeline.submit(marker1, resource, [sameEp]);
  await again.waitFor((s) => s.some((x) => x.spanId === marker1[0]!.spanId), 15_000);
  t.equal(again.spans.length, 26, 'each replayed span delivered once');
  t.equal(new Set(again.spans.map((s) => s.spanId)).size, 26, 'distinct span ids');

  // Delivered spans are acknowledged: a second restart replays nothing. The proof is again a
  // marker sent through the restarted pipeline: nothing but the marker may arrive before it.
  await pipeline.flush(2000);
  await pipeline.shutdown(1000);
  const logsBefore = logs.length;
  const third = await ExportPipeline.create({
    endpoints: [sameEp],
    spool: { dir, maxBytes: 8 << 20 },
    metrics: createExportMetrics(new Registry()),
    log: recordEvents(logs),
  });
  t.teardown(() => third.shutdown(500));
  const marker2 = makeSpans(1);
  third.submit(marker2, resource, [sameEp]);
  await again.waitFor((s) => s.some((x) => x.spanId === marker2[0]!.spanId), 15_000);
  t.equal(again.spans.length, 27, 'after a clean restart only the new span arrived');
  t.notOk(
    logs.slice(logsBefore).some((l) => l.event === 'spool_replayed'),
    'nothing replayed after a clean restart',
  );
});

t.test('torn and corrupt records are read as far as they go, never a crash', async (t) => {
  const a = frameRecord(Buffer.from('{"t":"p","job":"1","s":1}'));
  const b = frameRecord(Buffer.from('{"t":"p","job":"2","s":2}'));
  const bad = Buffer.from(b);
  bad.writeUInt8(bad[bad.length - 3]! ^ 0xff, bad.length - 3);
  const r = readRecords(Buffer.concat([a, bad, a, a.subarray(0, 5)]));
  t.equal(r.payloads.length, 2);
  t.equal(r.corrupt, 1);
  t.equal(r.torn, true);
});

t.test('a corrupt spool segment is skipped and the rest replayed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-spool2-'));
  const receiver = await new OtlpReceiver({ behaviour: () => ({ kind: 'error', code: status.UNAVAILABLE }) }).start();
  const ep = endpointSettings('primary', receiver.url, { retry: { initialBackoffMs: 5000, maxBackoffMs: 5000 } });
  const p1 = await ExportPipeline.create({
    endpoints: [ep],
    spool: { dir, maxBytes: 1 << 20 },
    metrics: createExportMetrics(new Registry()),
    log: () => undefined,
  });
  p1.submit(makeSpans(3), resource, [ep]);
  p1.submit(makeSpans(4), resource, [ep]);
  await p1.shutdown(300);
  await receiver.stop();
  const epDir = join(dir, 'endpoints', readdirSync(join(dir, 'endpoints'))[0]!);
  const seg = join(
    epDir,
    readdirSync(epDir)
      .filter((f) => f.startsWith('seg-'))
      .sort()[0]!,
  );
  const data = readFileSync(seg);
  data.writeUInt8(data[20]! ^ 0xff, 20); // inside the first record's payload
  writeFileSync(seg, data);

  const ok = await new OtlpReceiver({ port: receiver.port }).start();
  const logs: LogEvent[] = [];
  const registry = new Registry();
  const p2 = await ExportPipeline.create({
    endpoints: [ep],
    spool: { dir, maxBytes: 1 << 20 },
    metrics: createExportMetrics(registry),
    log: recordEvents(logs),
  });
  t.teardown(async () => {
    await p2.shutdown(500);
    await ok.stop();
  });
  await ok.waitForSpans(4, 15_000);
  await p2.flush(1000);
  t.equal(ok.spans.length, 4, 'the intact group is delivered, the corrupt one skipped');
  t.ok(logs.some((l) => l.event === 'spool_records_skipped' && l.corrupt === 1));
  t.equal(await metric(registry, 'gitlab_otel_spool_corrupt_records_total'), 1);
});

t.test('over the spool bound the oldest spans are evicted and counted; the files never exceed the bound', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-spool3-'));
  const receiver = await new OtlpReceiver({ behaviour: () => ({ kind: 'error', code: status.UNAVAILABLE }) }).start();
  const ep = endpointSettings('primary', receiver.url, { retry: { initialBackoffMs: 5000, maxBackoffMs: 5000 } });
  const registry = new Registry();
  const maxBytes = 200_000;
  const p = await ExportPipeline.create({
    endpoints: [ep],
    spool: { dir, maxBytes },
    metrics: createExportMetrics(registry),
    log: () => undefined,
  });
  t.teardown(async () => {
    await p.shutdown(300);
    await receiver.stop();
  });
  const spoolBytes = (): number => {
    let n = 0;
    for (const e of readdirSync(join(dir, 'endpoints'))) {
      for (const f of readdirSync(join(dir, 'endpoints', e))) n += statSync(join(dir, 'endpoints', e, f)).size;
    }
    return n;
  };
  let peak = 0;
  for (let i = 0; i < 200; i++) {
    p.submit(makeSpans(10), resource, [ep]);
    await new Promise((r) => setImmediate(r));
    peak = Math.max(peak, spoolBytes());
  }
  const dropped = await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'spool_full' });
  t.ok(dropped > 0, `evicted ${dropped} spans`);
  t.ok(peak > maxBytes / 2, `the spool filled up (peak ${peak} bytes on disk)`);
  t.ok(peak <= maxBytes, `bytes on disk stayed within the bound (peak ${peak} ≤ ${maxBytes})`);
  const onDisk = readdirSync(join(dir, 'endpoints')).length;
  t.equal(onDisk, 1);
  t.ok(p.health()[0]!.queueSpans <= 2000 - dropped, 'evicted spans left the queue too');
});
