// The endpoint queue's accounting, directly: bounds count in-flight spans,
// only durable spans are taken, expiry and removal keep the byte count right.
import t from 'tap';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { estimateSpanBytes, SpanQueue, type QueueItem } from '../../../src/telemetry/export/span-queue.js';
import { makeSpans } from '../../support/export.js';

const resource = resourceFromAttributes({});

function items(n: number, over: Partial<QueueItem> = {}): QueueItem[] {
  return makeSpans(n).map((span, i) => ({ span, resource, enqueuedAt: 1000 + i, bytes: 100, durable: true, ...over }));
}

t.test('estimateSpanBytes grows with names, attribute keys and values, and the status message', async (t) => {
  const [s] = makeSpans(1);
  const base = estimateSpanBytes({ ...s!, attributes: {} });
  t.ok(base > 0);
  t.equal(estimateSpanBytes({ ...s!, attributes: {}, name: `${s!.name}xxxx` }), base + 4);
  t.equal(estimateSpanBytes({ ...s!, attributes: { k: 'v'.repeat(50) } }), base + 1 + 8 + 50);
  t.equal(estimateSpanBytes({ ...s!, attributes: { k: ['ab', 'c'] } }), base + 1 + 8 + 4 + 3);
  t.equal(estimateSpanBytes({ ...s!, attributes: { k: 7 } }), base + 1 + 8 + 9);
  t.equal(estimateSpanBytes({ ...s!, attributes: {}, status: { code: 2, message: 'boom' } }), base + 4);
});

t.test('bounds: spans and bytes, in flight included', async (t) => {
  const q = new SpanQueue({ maxSpans: 3, maxBytes: 250 });
  for (const i of items(2)) q.push(i);
  t.equal(q.fits(50), true, 'a third small span fits');
  t.equal(q.fits(51), false, 'but not past the byte bound');
  const batch = q.take(2);
  t.equal(batch.length, 2);
  t.equal(q.spans, 2, 'taken spans still count until released');
  t.equal(q.bytes, 200);
  t.equal(q.queued, 0);
  t.equal(q.fits(51), false, 'in-flight bytes count against the bound');
  q.release(batch);
  t.equal(q.spans, 0);
  t.equal(q.bytes, 0);
  t.equal(q.fits(250), true);
});

t.test('only durable spans at the front are ready; a span not yet on disk holds back those behind it', async (t) => {
  const q = new SpanQueue({ maxSpans: 100, maxBytes: 1e6 });
  const [a, b, c] = items(3);
  b!.durable = false;
  for (const i of [a!, b!, c!]) q.push(i);
  t.equal(q.readyCount(10), 1);
  t.same(q.take(10), [a], 'order is kept: c waits for b');
  t.equal(q.readyCount(10), 0);
  b!.durable = true;
  t.equal(q.readyCount(10), 2);
  t.equal(q.readyCount(1), 1, 'bounded by the limit asked for');
  t.equal(q.oldestQueuedAt(), b!.enqueuedAt);
});

t.test('expire takes out what is older than max age, oldest first, and frees its bytes', async (t) => {
  const q = new SpanQueue({ maxSpans: 100, maxBytes: 1e6 });
  const all = items(5); // enqueuedAt 1000..1004
  for (const i of all) q.push(i);
  const expired = q.expire(1103, 100); // older than 100 ms at 1103: 1000, 1001, 1002
  t.same(expired, all.slice(0, 3));
  t.equal(q.queued, 2);
  t.equal(q.bytes, 200);
  t.same(q.expire(1103, 100), [], 'nothing twice');
});

t.test('removeWhere and drain keep the accounting right', async (t) => {
  const q = new SpanQueue({ maxSpans: 100, maxBytes: 1e6 });
  const all = items(6);
  for (const i of all) q.push(i);
  q.take(1);
  const removed = q.removeWhere((i) => i.enqueuedAt % 2 === 1);
  t.same(removed, [all[1], all[3], all[5]], 'only queued spans are candidates');
  t.equal(q.queued, 2);
  t.equal(q.bytes, 300, 'two queued plus one in flight');
  t.same(q.drain(), [all[2], all[4]]);
  t.equal(q.queued, 0);
  t.equal(q.bytes, 100, 'the in-flight span is still counted');
});

t.test('a long-running queue compacts its consumed head without losing order', async (t) => {
  const q = new SpanQueue({ maxSpans: 10_000, maxBytes: 1e9 });
  const all = items(3000);
  for (const i of all) q.push(i);
  let taken: QueueItem[] = [];
  for (let n = 0; n < 2500; n += 100) {
    const b = q.take(100);
    q.release(b);
    taken = taken.concat(b);
  }
  t.same(taken, all.slice(0, 2500));
  t.equal(q.queued, 500);
  t.same(q.take(500), all.slice(2500));
});
