// The endpoint queue's accounting, directly: items are groups, every bound and
// count is in spans (and the groups' bytes); bounds count in-flight
// groups, only durable groups are taken, a batch is whole groups up to the
// span limit, expiry and removal keep the counts right.
import t from 'tap';
import { spanCount, SpanQueue, type QueueItem } from '../../../src/telemetry/export/span-queue.js';

/** `n` groups of `spans` spans and `bytes` bytes each, enqueued at 1000, 1001, … */
function items(n: number, spans = 1, bytes = 100): QueueItem[] {
  return Array.from({ length: n }, (_, i) => ({ body: Buffer.alloc(bytes, i), spans, bytes, enqueuedAt: 1000 + i, durable: true }));
}

t.test('bounds: spans and encoded bytes, in flight included', async (t) => {
  const q = new SpanQueue({ maxSpans: 30, maxBytes: 250 });
  for (const i of items(2, 10)) q.push(i);
  t.equal(q.spans, 20, 'spans, not groups');
  t.equal(q.bytes, 200, 'the groups’ bytes');
  t.equal(q.fits(10, 50), true, 'a third group fits');
  t.equal(q.fits(10, 51), false, 'but not past the byte bound');
  t.equal(q.fits(11, 10), false, 'nor past the span bound');
  t.same(q.room(), { spans: 10, bytes: 50 });
  const batch = q.take(20);
  t.equal(batch.length, 2);
  t.equal(q.spans, 20, 'taken groups still count until released');
  t.equal(q.bytes, 200);
  t.equal(q.queued, 0);
  t.equal(q.fits(1, 51), false, 'in-flight bytes count against the bound');
  q.release(batch);
  t.equal(q.spans, 0);
  t.equal(q.bytes, 0);
  t.equal(q.fits(30, 250), true);
});

t.test('a batch is whole groups up to the span limit; full when the next group would pass it', async (t) => {
  const q = new SpanQueue({ maxSpans: 1000, maxBytes: 1e6 });
  for (const i of items(5, 15)) q.push(i);
  t.same(q.ready(40), { spans: 30, full: true }, 'two groups of 15; a third would make 45');
  t.same(q.ready(100), { spans: 75, full: false }, 'everything queued, and more could come');
  t.same(q.ready(75), { spans: 75, full: true }, 'exactly the limit');
  const b = q.take(40);
  t.equal(spanCount(b), 30);
  t.equal(q.queued, 45);
});

t.test('a group larger than the limit is taken alone rather than stuck', async (t) => {
  const q = new SpanQueue({ maxSpans: 1000, maxBytes: 1e6 });
  const [big, small] = [...items(1, 600), ...items(1, 5)];
  q.push(big!);
  q.push(small!);
  t.same(q.ready(512), { spans: 600, full: true });
  t.same(q.take(512), [big]);
  t.same(q.take(512), [small]);
});

t.test('only durable groups at the front are ready; a group not yet on disk holds back those behind it', async (t) => {
  const q = new SpanQueue({ maxSpans: 100, maxBytes: 1e6 });
  const [a, b, c] = items(3, 2);
  b!.durable = false;
  for (const i of [a!, b!, c!]) q.push(i);
  t.same(q.ready(10), { spans: 2, full: false });
  t.same(q.take(10), [a], 'order is kept: c waits for b');
  t.same(q.ready(10), { spans: 0, full: false });
  b!.durable = true;
  t.same(q.ready(10), { spans: 4, full: false });
  t.same(q.ready(3), { spans: 2, full: true }, 'bounded by the limit asked for');
  t.equal(q.oldestQueuedAt(), b!.enqueuedAt);
});

t.test('expire takes out what is older than max age, oldest first, and frees its spans and bytes', async (t) => {
  const q = new SpanQueue({ maxSpans: 100, maxBytes: 1e6 });
  const all = items(5, 3); // enqueuedAt 1000..1004
  for (const i of all) q.push(i);
  const expired = q.expire(1103, 100); // older than 100 ms at 1103: 1000, 1001, 1002
  t.same(expired, all.slice(0, 3));
  t.equal(q.queued, 6);
  t.equal(q.bytes, 200);
  t.same(q.expire(1103, 100), [], 'nothing twice');
});

t.test('removeWhere and drain keep the accounting right', async (t) => {
  const q = new SpanQueue({ maxSpans: 100, maxBytes: 1e6 });
  const all = items(6, 2);
  for (const i of all) q.push(i);
  q.take(2);
  const removed = q.removeWhere((i) => i.enqueuedAt % 2 === 1);
  t.same(removed, [all[1], all[3], all[5]], 'only queued groups are candidates');
  t.equal(q.queued, 4);
  t.equal(q.spans, 6, 'four queued plus two in flight');
  t.equal(q.bytes, 300, 'two queued groups plus one in flight');
  t.same(q.drain(), [all[2], all[4]]);
  t.equal(q.queued, 0);
  t.equal(q.bytes, 100, 'the in-flight group is still counted');
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
