// When the tracker's jobs reach the journal. A job's record is rewritten after
// every observed exchange that changed it, but not while the response that
// changed it is still on its way to the runner: stale records are collected
// and written together on the next turn of the event loop. A full or
// read-only disk costs the restart guarantee, never the job: failures are
// logged once per failure streak and otherwise ignored.
import type { Logger } from '../../log.js';
import type { ReadResult } from '../wire/payload.js';
import type { JobJournal, JournalledJob } from './journal.js';

export class JournalWriter {
  /** Jobs whose record is stale. */
  private readonly dirty = new Set<number>();
  private scheduled = false;
  private failing = false;
  /** Set by suspend(): the journal holds the jobs now and is not written again. */
  private suspended = false;

  constructor(
    private readonly journal: JobJournal | undefined,
    /** The job's record as it stands; undefined once the job is no longer tracked. */
    private readonly recordOf: (jobId: number) => JournalledJob | undefined,
    private readonly log: Logger,
  ) {}

  get enabled(): boolean {
    return this.journal !== undefined;
  }

  /** The records a previous process left; empty without a journal or when it cannot be read. */
  load(): Map<string, ReadResult<JournalledJob>> {
    if (!this.journal) return new Map();
    try {
      return this.journal.loadAll();
    } catch (err) {
      this.failed('load', err);
      return new Map();
    }
  }

  /** The job's record is stale: rewritten on the next turn of the event loop. */
  later(jobId: number): void {
    if (!this.journal || this.suspended) return;
    this.dirty.add(jobId);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.write();
    });
  }

  /** The job ended (its spans are with the exporter) or its record is unusable. */
  delete(jobId: number | string): void {
    this.dirty.delete(Number(jobId));
    if (!this.journal || this.suspended) return;
    try {
      this.journal.delete(String(jobId));
    } catch (err) {
      this.failed('write', err);
    }
  }

  /** Writes these jobs' records now and stops writing: the next process takes them up. */
  suspend(jobIds: Iterable<number>): void {
    if (this.suspended) return;
    for (const id of jobIds) this.dirty.add(id);
    this.write();
    this.suspended = true;
  }

  private write(): void {
    if (!this.journal || this.suspended) return;
    for (const id of this.dirty) {
      const record = this.recordOf(id);
      if (!record) continue;
      try {
        this.journal.put(String(id), record);
        this.failing = false;
      } catch (err) {
        this.failed('write', err);
      }
    }
    this.dirty.clear();
  }

  private failed(op: 'load' | 'write', err: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.log('warn', `job journal ${op} failed; jobs in progress may not survive a restart`, {
      code: 'JOURNAL_UNAVAILABLE',
      errno: (err as NodeJS.ErrnoException).code ?? 'error',
    });
  }
}
