// The job journal: the per-job state the job tracker needs to finish a job's
// spans after a proxy restart (ids, start times, open stages, log offset).
// Last write per job wins; compacted on open and when mostly garbage.
import { mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readRecordFile, SyncRecordWriter, frame } from '../../telemetry/export/record-file.js';
import { writeFileSync } from 'node:fs';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

type Entry = { t: 'p'; job: string; s: JsonValue } | { t: 'x'; job: string };

export interface JournalWarning {
  event: 'journal_records_skipped';
  file: string;
  corrupt: number;
  torn: boolean;
}

export class JobJournal {
  private writer: SyncRecordWriter;
  private readonly live = new Map<string, JsonValue>();
  private liveBytes = 0;
  private readonly path: string;

  private constructor(dir: string, onWarning: (w: JournalWarning) => void) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, 'jobs.journal');
    const read = readRecordFile(this.path);
    if (read.corrupt > 0 || read.torn)
      onWarning({ event: 'journal_records_skipped', file: this.path, corrupt: read.corrupt, torn: read.torn });
    for (const p of read.payloads) {
      let e: Entry;
      try {
        e = JSON.parse(p.toString('utf8')) as Entry;
      } catch {
        continue;
      }
      if (e.t === 'p') this.live.set(e.job, e.s);
      else if (e.t === 'x') this.live.delete(e.job);
    }
    this.compact();
    this.writer = new SyncRecordWriter(this.path);
    this.writer.bytes = this.fileSize();
  }

  static open(dir: string, onWarning: (w: JournalWarning) => void = () => undefined): JobJournal {
    return new JobJournal(dir, onWarning);
  }

  /** Durable when it returns (written to the file, not fsynced). */
  put(jobId: string, snapshot: JsonValue): void {
    this.live.set(jobId, snapshot);
    this.writer.append(Buffer.from(JSON.stringify({ t: 'p', job: jobId, s: snapshot } satisfies Entry)));
    this.maybeCompact();
  }

  delete(jobId: string): void {
    if (!this.live.delete(jobId)) return;
    this.writer.append(Buffer.from(JSON.stringify({ t: 'x', job: jobId } satisfies Entry)));
    this.maybeCompact();
  }

  loadAll(): Map<string, JsonValue> {
    return new Map(this.live);
  }

  private closed = false;
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.close();
  }

  private fileSize(): number {
    try {
      return statSync(this.path).size;
    } catch {
      return 0;
    }
  }

  private maybeCompact(): void {
    if (this.writer.bytes < 1024 * 1024 || this.writer.bytes < 4 * this.liveBytes) return;
    this.writer.close();
    this.compact();
    this.writer = new SyncRecordWriter(this.path);
    this.writer.bytes = this.fileSize();
  }

  /** Rewrites the live entries to a new file and renames it over the old one (atomic on POSIX). */
  private compact(): void {
    const records = [...this.live].map(([job, s]) => frame(Buffer.from(JSON.stringify({ t: 'p', job, s } satisfies Entry))));
    const body = Buffer.concat(records);
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, body, { mode: 0o600 });
    renameSync(tmp, this.path);
    this.liveBytes = body.length;
  }
}
