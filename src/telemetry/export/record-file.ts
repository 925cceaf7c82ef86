// Checksummed append-only record files, shared by the span spool and the job
// journal. A record is [u32 length][u32 crc32][payload]; reading stops at a
// torn tail (a write cut by kill -9) and skips a record whose checksum does not
// match, reporting both instead of throwing.
import { closeSync, fchmodSync, openSync, readFileSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

const HEADER = 8;
/** A length above this is not a record but a corrupt header. */
const MAX_RECORD = 256 * 1024 * 1024;

export function frameRecord(payload: Buffer): Buffer {
  return Buffer.concat(frameParts([payload]));
}

/**
 * One record whose payload is `parts` back to back, as the header followed by
 * the parts themselves: the payload is checksummed in place and never copied
 * (the spool's records end with an encoded span group; docs/export.md#encode-once).
 */
export function frameParts(parts: readonly Buffer[]): Buffer[] {
  let length = 0;
  let sum = 0;
  for (const p of parts) {
    length += p.length;
    sum = crc32(p, sum);
  }
  const header = Buffer.allocUnsafe(HEADER);
  header.writeUInt32BE(length, 0);
  header.writeUInt32BE(sum, 4);
  return [header, ...parts];
}

export interface RecordFileRead {
  payloads: Buffer[];
  /** Records skipped because their checksum failed. */
  corrupt: number;
  /** The file ended inside a record (or a header was unreadable): the rest was ignored. */
  torn: boolean;
}

export function readRecords(data: Buffer): RecordFileRead {
  const payloads: Buffer[] = [];
  let corrupt = 0;
  let offset = 0;
  while (offset < data.length) {
    if (data.length - offset < HEADER) return { payloads, corrupt, torn: true };
    const len = data.readUInt32BE(offset);
    const sum = data.readUInt32BE(offset + 4);
    if (len > MAX_RECORD || offset + HEADER + len > data.length) return { payloads, corrupt, torn: true };
    const payload = data.subarray(offset + HEADER, offset + HEADER + len);
    if (crc32(payload) === sum) payloads.push(payload);
    else corrupt++;
    offset += HEADER + len;
  }
  return { payloads, corrupt, torn: false };
}

export function readRecordFile(path: string): RecordFileRead {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch {
    return { payloads: [], corrupt: 0, torn: false };
  }
  return readRecords(data);
}

/** Appends framed records in call order; writes of one tick are coalesced into one vectored write (no copy). */
export class AsyncRecordWriter {
  private handle?: Promise<FileHandle>;
  private pending: Buffer[] = [];
  private pendingDone: (() => void)[] = [];
  private chain: Promise<void> = Promise.resolve();
  private scheduled = false;
  bytes = 0;

  constructor(readonly path: string) {}

  /**
   * Appends one record whose payload is `payload` (or its parts back to back).
   * Resolves once the record is in the file (the page cache: it survives the process, not the machine).
   */
  append(payload: Buffer | readonly Buffer[]): Promise<void> {
    const framed = frameParts(Buffer.isBuffer(payload) ? [payload] : payload);
    for (const b of framed) {
      this.bytes += b.length;
      this.pending.push(b);
    }
    const done = new Promise<void>((resolve) => this.pendingDone.push(resolve));
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.drain());
    }
    return done;
  }

  private drain(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const bufs = this.pending;
    const done = this.pendingDone;
    this.pending = [];
    this.pendingDone = [];
    this.chain = this.chain.then(async () => {
      try {
        // 0600 whatever the umask, also for a file that already existed (docs/security.md#files).
        this.handle ??= open(this.path, 'a', 0o600).then(async (fh) => {
          await fh.chmod(0o600);
          return fh;
        });
        const fh = await this.handle;
        // libuv writes all of them, in IOV_MAX pieces if need be, and retries partial writes.
        await fh.writev(bufs);
      } catch {
        // A full or read-only disk must not stop delivery: the spans are still in memory.
      }
      for (const d of done) d();
    });
  }

  async close(): Promise<void> {
    // Records appended in this tick are not yet on the chain: without this, an
    // acknowledgement made just before close would be lost and its spans sent again.
    this.drain();
    await this.chain;
    if (this.handle) await (await this.handle).close().catch(() => undefined);
  }
}

/** Synchronous appends for small, ordered state records (the job journal). */
export class SyncRecordWriter {
  private fd: number;
  bytes = 0;
  constructor(readonly path: string) {
    this.fd = openSync(path, 'a', 0o600);
    fchmodSync(this.fd, 0o600);
  }
  append(payload: Buffer): void {
    // A closed descriptor's number is soon reused (a socket, another file): writing to it would put
    // these records there. After close, appends fail as a closed descriptor would.
    if (this.fd < 0) throw Object.assign(new Error(`${this.path} is closed`), { code: 'EBADF' });
    const framed = frameRecord(payload);
    writeSync(this.fd, framed);
    this.bytes += framed.length;
  }
  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
}
