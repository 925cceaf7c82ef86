import t from 'tap';
import { MessageChannel } from 'node:worker_threads';
import { ownedCopy } from '../../../src/runner-proxy/telemetry-thread/thread-observer.js';

t.test('ownedCopy: the chunks in one fresh ArrayBuffer; transferring it leaves the chunks whole', async (t) => {
  const chunks = [Buffer.from('section_start:1:x\r'), Buffer.from('\x1b[0Kline\n'), Buffer.alloc(0), Buffer.from('end')];
  const copy = ownedCopy(chunks);
  t.same(Buffer.from(copy), Buffer.concat(chunks));
  t.equal(copy.byteLength, Buffer.concat(chunks).length, 'exactly the body, nothing around it');
  const { port1, port2 } = new MessageChannel();
  t.teardown(() => port1.close());
  const received = new Promise<ArrayBuffer>((resolve) => port2.once('message', resolve));
  port1.postMessage(copy, [copy]);
  t.equal(copy.byteLength, 0, 'the copy was transferred (detached here)');
  t.same(Buffer.from(await received), Buffer.concat(chunks), 'and arrived whole');
  t.same(Buffer.concat(chunks).toString('latin1'), 'section_start:1:x\r\x1b[0Kline\nend', 'the chunks are untouched');
  t.same(Buffer.from(ownedCopy(Buffer.from('one'))), Buffer.from('one'), 'a single Buffer too');
});

t.test('why a copy: a small Buffer is a view into the shared pool, and its ArrayBuffer holds its neighbours', async (t) => {
  const a = Buffer.from('job-a');
  const b = Buffer.from('job-b');
  t.ok(a.buffer.byteLength > a.length, 'the ArrayBuffer is larger than the Buffer');
  t.equal(a.buffer, b.buffer, 'two unrelated Buffers share one ArrayBuffer');
});
