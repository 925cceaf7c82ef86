// The product's structured logger: one JSON object per line, below the
// minimum level nothing is written, fields merged flat.
import t from 'tap';
import { jsonLogger, silentLogger } from '../src/log.js';

t.test('one JSON line per call, with time, level, msg and the fields', async (t) => {
  const lines: string[] = [];
  const log = jsonLogger((line) => lines.push(line));
  log('warn', 'collector unreachable', { endpoint: 'http://127.0.0.1:4318', attempt: 2, retrying: true });
  t.equal(lines.length, 1);
  t.ok(lines[0]!.endsWith('\n'), 'newline-terminated');
  t.equal(lines[0]!.trimEnd().includes('\n'), false, 'exactly one line');
  const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.match(entry, { level: 'warn', msg: 'collector unreachable', endpoint: 'http://127.0.0.1:4318', attempt: 2, retrying: true });
  t.ok(!Number.isNaN(Date.parse(entry.time as string)), 'time is an ISO timestamp');
});

t.test('levels below the minimum are dropped (info by default)', async (t) => {
  const lines: string[] = [];
  const log = jsonLogger((line) => lines.push(line));
  log('debug', 'noise');
  log('info', 'kept');
  log('error', 'kept too');
  t.same(
    lines.map((l) => (JSON.parse(l) as { msg: string }).msg),
    ['kept', 'kept too'],
  );
  const debug: string[] = [];
  jsonLogger((line) => debug.push(line), 'debug')('debug', 'now shown');
  t.equal(debug.length, 1);
  const errorsOnly: string[] = [];
  const quiet = jsonLogger((line) => errorsOnly.push(line), 'error');
  quiet('warn', 'dropped');
  quiet('error', 'shown');
  t.equal(errorsOnly.length, 1);
});

t.test('a message with newlines or quotes stays one valid JSON line', async (t) => {
  const lines: string[] = [];
  jsonLogger((line) => lines.push(line))('info', 'a\nb "c"');
  t.equal(lines[0]!.split('\n').length, 2, 'the only newline is the terminator');
  t.equal((JSON.parse(lines[0]!) as { msg: string }).msg, 'a\nb "c"');
});

t.test('the silent logger accepts every call and returns nothing', async (t) => {
  t.equal(silentLogger('error', 'x', { a: 1 }), undefined);
});
