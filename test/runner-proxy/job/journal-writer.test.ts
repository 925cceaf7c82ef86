// When tracked jobs reach the journal, on a real journal file: not while the
// exchange that changed them is still being answered, once per turn however
// many exchanges changed them, and not at all after suspend.
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobJournal, type JournalledJob } from '../../../src/runner-proxy/job/journal.js';
import { JournalWriter } from '../../../src/runner-proxy/job/journal-writer.js';
import { sampleRecord } from '../../support/journal-records.js';
import { memoryLogger } from '../../support/memory-logger.js';

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-journal-writer-'));
  const journal = JobJournal.open(dir);
  const records = new Map<number, JournalledJob>();
  let asked = 0;
  const log = memoryLogger();
  const writer = new JournalWriter(
    journal,
    (id) => {
      asked++;
      return records.get(id);
    },
    log,
  );
  return { dir, journal, records, writer, log, asked: () => asked };
}

t.test('records are written on the next turn, once per job however often it changed', async (t) => {
  const s = setup();
  s.records.set(1, sampleRecord({ canceled: false }, 1));
  s.writer.later(1);
  s.writer.later(1);
  t.same(s.journal.jobs(), [], 'nothing written while the exchange is being answered');
  s.records.set(1, sampleRecord({ canceled: true }, 1));
  await nextTurn();
  t.equal(s.asked(), 1, 'one record made for two changes');
  t.match(s.journal.loadAll().get('1'), { ok: true, value: { canceled: true } }, 'the state as it stood at the write');
  s.journal.close();
});

t.test('a job that ended before the write is not written; delete removes its record', async (t) => {
  const s = setup();
  s.records.set(2, sampleRecord({}, 2));
  s.writer.later(2);
  s.records.delete(2);
  await nextTurn();
  t.same(s.journal.jobs(), []);
  s.records.set(3, sampleRecord({}, 3));
  s.writer.later(3);
  await nextTurn();
  t.same(s.journal.jobs(), ['3']);
  s.writer.delete(3);
  t.same(s.journal.jobs(), []);
  s.journal.close();
});

t.test('suspend writes the jobs as they stand now and nothing after', async (t) => {
  const s = setup();
  s.records.set(4, sampleRecord({}, 4));
  s.records.set(5, sampleRecord({}, 5));
  s.writer.suspend([4, 5]);
  t.same(s.journal.jobs().sort(), ['4', '5'], 'written at once, not on the next turn');
  s.writer.later(4);
  s.writer.delete(5);
  await nextTurn();
  t.same(s.journal.jobs().sort(), ['4', '5'], 'the next process finds both');
  s.journal.close();
});

t.test('without a journal everything is a no-op', async (t) => {
  const writer = new JournalWriter(undefined, () => sampleRecord({}, 6), memoryLogger());
  t.equal(writer.enabled, false);
  writer.later(6);
  writer.delete(6);
  writer.suspend([6]);
  t.same([...writer.load()], []);
});
