// The live job log, reassembled by offset and parsed as it streams.
//
// The runner uploads its log with `PATCH /jobs/:id/trace` and `Content-Range:
// start-end`; bytes can be re-sent (416, the runner's own retries, a full
// re-upload from 0 after a 412), so bytes are placed by offset and parsed
// exactly once, up to a high-water mark. Only the bytes of an unfinished line
// are kept between PATCHes (capped), never the log itself.
//
// What is found: FF_TIMESTAMPS entry headers (`YYYY-MM-DDTHH:MM:SS.ffffffZ SSO `
// / `+`), section markers (`section_start|end:<unix s>:<name>[opts]\r\x1b[0K`)
// and the runner's output-limit notice. Lines are decoded to text only while a
// consumer asks for them (`captureLines`), so the bulk of a log (script output)
// is only scanned with Buffer.indexOf, never decoded.
//
// Pure: no I/O, no clock.

/** A section marker as it appears in the log. */
export interface SectionMarker {
  readonly kind: 'start' | 'end';
  readonly name: string;
  /** The raw `[k=v,…]` options of a start marker, without brackets. */
  readonly options?: string;
  /** The marker's own whole Unix seconds. */
  readonly seconds: number;
  /** Epoch ns: the entry's FF_TIMESTAMPS stamp when there is one, else `seconds`. */
  readonly timeNs: bigint;
  /** Whether `timeNs` comes from a stamp (µs precision). */
  readonly stamped: boolean;
  /** Stream id of the entry (0 = runner, 1 = job script, ≥15 services); undefined without FF_TIMESTAMPS. */
  readonly stream?: number;
  /** Log offset of the marker's first byte. */
  readonly offset: number;
}

/** One complete log line, decoded (only while `captureLines` is on). */
export interface LogLine {
  /** The line without its stamp header and trailing `\r`/`\n`, as UTF-8 (capped). */
  readonly text: string;
  readonly stream?: number;
  readonly timeNs?: bigint;
  readonly offset: number;
}

export interface OutputLimitNotice {
  readonly offset: number;
  /** The byte limit the runner printed. */
  readonly limitBytes: number;
}

export interface JobLogSink {
  marker(marker: SectionMarker): void;
  line(line: LogLine): void;
  outputLimit(notice: OutputLimitNotice): void;
}

/** What `accept` did with one PATCH body. */
export interface AcceptResult {
  /** New bytes parsed. */
  readonly parsed: number;
  /** Bytes at or below the high-water mark, skipped (re-sends, re-uploads). */
  readonly duplicate: number;
  /** Bytes between the high-water mark and `start` that were never seen. */
  readonly gap: number;
}

/** JSON-serialisable parser state, for resuming after a restart. */
export interface JobLogState {
  readonly v: 1;
  readonly offset: number;
  /** Unparsed tail (base64), ≤ MAX_CARRY_BYTES. */
  readonly carry: string;
  readonly scanFrom: number;
  readonly lineOpen: boolean;
  readonly lineCut: boolean;
  readonly lineStamped: boolean;
  readonly lineTimeNs?: string;
  readonly lineStream?: number;
  readonly resync: boolean;
  readonly firstTimestamp?: string;
  readonly lastTimestamp?: string;
  readonly outputLimitHit: boolean;
  readonly gapBytes: number;
  readonly duplicateBytes: number;
}

const SECTION = Buffer.from('section_', 'latin1');
const NL = 0x0a;
export const HEADER_BYTES = 32;
/** Longest marker accepted: prefix, 19 digits, a 255-byte name, 256 bytes of options, suffix. */
export const MAX_MARKER_BYTES = 600;
/**
 * The most kept of one unfinished line. The runner cuts its own entries at
 * 8 KiB (plus the 32-byte stamp), so a stamped log never needs more; longer
 * lines (no FF_TIMESTAMPS, progress bars) are cut and only marker tails kept.
 */
export const MAX_CARRY_BYTES = 16 * 1024;
/** Captured lines are decoded up to this many bytes. */
export const MAX_LINE_TEXT_BYTES = 4096;

// `\x1b[33;1mJob's log exceeded limit of N bytes.` written below the stamper.
const NOTICE = Buffer.from("\x1b[33;1mJob's log exceeded limit of ", 'latin1');
const MARKER = /^section_(start|end):(\d{1,19}):([A-Za-z0-9_.-]{1,255})(?:\[((?:\w+=\w+)(?:, ?\w+=\w+)*)\])?\r\x1b\[0K/;
const EMPTY = Buffer.alloc(0);

const INCOMPLETE = -1;
const INVALID = 0;

function digit(b: Buffer, i: number): number {
  const d = b[i]! - 48;
  return d >= 0 && d <= 9 ? d : NaN;
}

function num(b: Buffer, i: number, n: number): number {
  let v = 0;
  for (let k = 0; k < n; k++) v = v * 10 + digit(b, i + k);
  return v;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

/** Whether a 32-byte FF_TIMESTAMPS header starts at `i` (fixed punctuation, stream, type, flag). */
export function isStampHeader(b: Buffer, i: number): boolean {
  return (
    b[i + 4] === 0x2d && // -
    b[i + 7] === 0x2d &&
    b[i + 10] === 0x54 && // T
    b[i + 13] === 0x3a && // :
    b[i + 16] === 0x3a &&
    b[i + 19] === 0x2e && // .
    b[i + 26] === 0x5a && // Z
    b[i + 27] === 0x20 &&
    (b[i + 30] === 0x4f || b[i + 30] === 0x45) && // O | E
    (b[i + 31] === 0x20 || b[i + 31] === 0x2b) && // ' ' | +
    isHex(b[i + 28]!) &&
    isHex(b[i + 29]!)
  );
}

/** Epoch ns of the stamp at `i`, or undefined when its digits are not a date. */
export function stampTimeNs(b: Buffer, i: number): bigint | undefined {
  const ms = Date.UTC(num(b, i, 4), num(b, i + 5, 2) - 1, num(b, i + 8, 2), num(b, i + 11, 2), num(b, i + 14, 2), num(b, i + 17, 2));
  const micros = num(b, i + 20, 6);
  if (!Number.isFinite(ms) || !Number.isFinite(micros)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt(micros) * 1000n;
}

function streamOf(b: Buffer, i: number): number {
  return parseInt(b.toString('latin1', i + 28, i + 30), 16);
}

/**
 * Offset reassembly plus the incremental parser. Feed it what the upstream
 * accepted; it calls the sink synchronously, in log order.
 */
export class JobLog {
  /** Decode complete lines and pass them to `sink.line` (switch on only where needed: it costs). */
  captureLines = false;

  private offsetValue = 0;
  private carry: Buffer = EMPTY;
  /** Within `carry`: where marker scanning resumes (earlier markers were already reported). */
  private scanFrom = 0;
  /** The current line's stamp header has been consumed (carry starts mid-line). */
  private lineOpen = false;
  /** The current line lost its beginning (over-long): never reported as a line. */
  private lineCut = false;
  private lineStamped = false;
  private lineHeaderAt = -1;
  private lineTimeNs: bigint | undefined;
  private lineStream: number | undefined;
  private resync = false;
  private firstTs: bigint | undefined;
  private lastTs: bigint | undefined;
  private limitHit = false;
  private gaps = 0;
  private duplicates = 0;

  constructor(
    private readonly sink: JobLogSink,
    state?: JobLogState,
  ) {
    if (state) this.restoreState(state);
  }

  /** Bytes of the log parsed so far (the high-water mark). */
  get offset(): number {
    return this.offsetValue;
  }

  get firstTimestamp(): bigint | undefined {
    return this.firstTs;
  }

  get lastTimestamp(): bigint | undefined {
    return this.lastTs;
  }

  /** The runner's output-limit notice was seen: no more markers will come. */
  get outputLimitHit(): boolean {
    return this.limitHit;
  }

  get retainedBytes(): number {
    return this.carry.length;
  }

  get gapBytes(): number {
    return this.gaps;
  }

  get duplicateBytes(): number {
    return this.duplicates;
  }

  /** One PATCH body the upstream accepted; `start` from its `Content-Range`. */
  accept(start: number, body: Buffer): AcceptResult {
    if (!Number.isSafeInteger(start) || start < 0 || body.length === 0) return { parsed: 0, duplicate: 0, gap: 0 };
    const end = start + body.length;
    if (end <= this.offsetValue) {
      this.duplicates += body.length;
      return { parsed: 0, duplicate: body.length, gap: 0 };
    }
    let gap = 0;
    let duplicate = 0;
    let chunk = body;
    if (start > this.offsetValue) {
      // Bytes we never saw (a missed PATCH, a restart): what is carried no
      // longer continues into this chunk, so drop it and restart at a line.
      gap = start - this.offsetValue;
      this.gaps += gap;
      this.carry = EMPTY;
      this.scanFrom = 0;
      this.lineOpen = false;
      this.lineCut = false;
      this.resync = true;
    } else if (start < this.offsetValue) {
      duplicate = this.offsetValue - start;
      this.duplicates += duplicate;
      chunk = body.subarray(duplicate);
    }
    const base = end - chunk.length - this.carry.length;
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    this.offsetValue = end;
    this.consume(buf, base, false);
    return { parsed: chunk.length, duplicate, gap };
  }

  /** The log is complete: parse a last line that has no newline. */
  end(): void {
    if (this.carry.length === 0 && !this.lineOpen) return;
    const base = this.offsetValue - this.carry.length;
    this.consume(this.carry, base, true);
  }

  snapshot(): JobLogState {
    return {
      v: 1,
      offset: this.offsetValue,
      carry: this.carry.toString('base64'),
      scanFrom: this.scanFrom,
      lineOpen: this.lineOpen,
      lineCut: this.lineCut,
      lineStamped: this.lineStamped,
      ...(this.lineTimeNs !== undefined ? { lineTimeNs: this.lineTimeNs.toString() } : {}),
      ...(this.lineStream !== undefined ? { lineStream: this.lineStream } : {}),
      resync: this.resync,
      ...(this.firstTs !== undefined ? { firstTimestamp: this.firstTs.toString() } : {}),
      ...(this.lastTs !== undefined ? { lastTimestamp: this.lastTs.toString() } : {}),
      outputLimitHit: this.limitHit,
      gapBytes: this.gaps,
      duplicateBytes: this.duplicates,
    };
  }

  private restoreState(s: JobLogState): void {
    this.offsetValue = s.offset;
    this.carry = Buffer.from(s.carry, 'base64').subarray(0, MAX_CARRY_BYTES);
    this.scanFrom = Math.min(s.scanFrom, this.carry.length);
    this.lineOpen = s.lineOpen;
    this.lineCut = s.lineCut;
    this.lineStamped = s.lineStamped;
    this.lineTimeNs = s.lineTimeNs !== undefined ? BigInt(s.lineTimeNs) : undefined;
    this.lineStream = s.lineStream;
    this.lineHeaderAt = -1;
    this.resync = s.resync;
    this.firstTs = s.firstTimestamp !== undefined ? BigInt(s.firstTimestamp) : undefined;
    this.lastTs = s.lastTimestamp !== undefined ? BigInt(s.lastTimestamp) : undefined;
    this.limitHit = s.outputLimitHit;
    this.gaps = s.gapBytes;
    this.duplicates = s.duplicateBytes;
  }

  /** Parse `b` (carry + new bytes); `base` is the log offset of b[0]. */
  private consume(b: Buffer, base: number, final: boolean): void {
    const end = b.length;
    let pos = 0;
    let scanFrom = this.scanFrom;
    this.scanFrom = 0;
    if (this.resync) {
      const nl = b.indexOf(NL);
      if (nl < 0) {
        this.carry = EMPTY;
        return;
      }
      this.resync = false;
      pos = nl + 1;
      scanFrom = 0;
    }
    let lastHeader = -1;
    let nextMarker = b.indexOf(SECTION, Math.max(pos, scanFrom));
    while (pos < end) {
      const nl = b.indexOf(NL, pos);
      const complete = nl >= 0 || final;
      const lineEnd = nl >= 0 ? nl : end;
      let contentStart = pos;
      const openedHere = !this.lineOpen;
      if (openedHere) {
        if (!complete && end - pos < HEADER_BYTES) {
          // A stamp header may be cut here: wait for the rest.
          this.keepCarry(b, pos, scanFrom);
          this.finishChunk(b, lastHeader);
          return;
        }
        this.lineOpen = true;
        this.lineCut = false;
        this.lineTimeNs = undefined;
        this.lineStream = undefined;
        if (lineEnd - pos >= HEADER_BYTES && isStampHeader(b, pos)) {
          this.lineStamped = true;
          this.lineHeaderAt = pos;
          lastHeader = pos;
          contentStart = pos + HEADER_BYTES;
          if (this.firstTs === undefined) this.firstTs = stampTimeNs(b, pos);
        } else {
          this.lineStamped = false;
          this.lineHeaderAt = -1;
        }
      }
      let pending = -1;
      const from = Math.max(contentStart, scanFrom);
      scanFrom = 0;
      if (nextMarker >= 0 && nextMarker < from) nextMarker = b.indexOf(SECTION, from);
      while (nextMarker >= 0 && nextMarker < lineEnd) {
        const used = this.marker(b, nextMarker, lineEnd, complete, base);
        if (used === INCOMPLETE) {
          pending = nextMarker;
          break;
        }
        nextMarker = b.indexOf(SECTION, nextMarker + (used === INVALID ? 1 : used));
      }
      if (!complete) {
        this.keepTail(b, pos, contentStart, pending, openedHere);
        this.finishChunk(b, lastHeader);
        return;
      }
      if (!this.lineCut) {
        if (!this.lineStamped && b[contentStart] === 0x1b && lineEnd - contentStart > NOTICE.length) {
          this.checkNotice(b, contentStart, lineEnd, base);
        }
        if (this.captureLines) this.reportLine(b, contentStart, lineEnd, base);
      }
      this.lineOpen = false;
      this.lineCut = false;
      pos = nl >= 0 ? nl + 1 : end;
    }
    this.carry = EMPTY;
    this.finishChunk(b, lastHeader);
  }

  private finishChunk(b: Buffer, lastHeader: number): void {
    if (lastHeader >= 0) {
      const t = stampTimeNs(b, lastHeader);
      if (t !== undefined) this.lastTs = t;
    }
    // Before `b` goes away, pin what the open line still needs from it.
    if (this.lineOpen && this.lineStamped && this.lineHeaderAt >= 0) {
      this.lineTimeNs ??= stampTimeNs(b, this.lineHeaderAt);
      this.lineStream ??= streamOf(b, this.lineHeaderAt);
      this.lineHeaderAt = -1;
    }
  }

  /** Keep the whole unfinished line from `lineStart`; it is re-read (header included) next time. */
  private keepCarry(b: Buffer, lineStart: number, scanFrom: number): void {
    this.carry = Buffer.from(b.subarray(lineStart));
    this.scanFrom = Math.max(0, scanFrom - lineStart);
    this.lineOpen = false;
    this.lineHeaderAt = -1;
  }

  private keepTail(b: Buffer, lineStart: number, contentStart: number, pending: number, openedHere: boolean): void {
    const end = b.length;
    // Resume scanning at the first marker that may still be completing, or
    // far enough back to catch a `section_` cut at the chunk's end.
    const resume = pending >= 0 ? pending : Math.max(contentStart, end - (SECTION.length - 1));
    if (end - lineStart <= MAX_CARRY_BYTES) {
      if (openedHere) {
        this.keepCarry(b, lineStart, resume);
      } else {
        // Already mid-line (cut earlier): the carry has no header to re-read.
        this.carry = Buffer.from(b.subarray(lineStart));
        this.scanFrom = resume - lineStart;
      }
      return;
    }
    // Over-long line: keep only what a marker in progress needs; the header
    // facts of the line are pinned by finishChunk.
    this.lineCut = true;
    this.carry = Buffer.from(b.subarray(resume));
    this.scanFrom = 0;
  }

  /** Returns the marker's length, INVALID, or INCOMPLETE (may still complete with more bytes). */
  private marker(b: Buffer, at: number, lineEnd: number, complete: boolean, base: number): number {
    const stop = Math.min(at + MAX_MARKER_BYTES, lineEnd);
    const m = MARKER.exec(b.toString('latin1', at, stop));
    if (!m) return !complete && lineEnd - at < MAX_MARKER_BYTES ? INCOMPLETE : INVALID;
    const seconds = Number(m[2]);
    const stampNs = this.lineStamped ? this.currentLineTime(b) : undefined;
    const stream = this.lineStamped ? this.currentLineStream(b) : undefined;
    const marker: SectionMarker = {
      kind: m[1] === 'start' ? 'start' : 'end',
      name: m[3]!,
      ...(m[4] !== undefined ? { options: m[4] } : {}),
      seconds,
      timeNs: stampNs ?? BigInt(seconds) * 1_000_000_000n,
      stamped: stampNs !== undefined,
      ...(stream !== undefined ? { stream } : {}),
      offset: base + at,
    };
    this.sink.marker(marker);
    return m[0].length;
  }

  private currentLineTime(b: Buffer): bigint | undefined {
    if (this.lineTimeNs === undefined && this.lineHeaderAt >= 0) this.lineTimeNs = stampTimeNs(b, this.lineHeaderAt);
    return this.lineTimeNs;
  }

  private currentLineStream(b: Buffer): number | undefined {
    if (this.lineStream === undefined && this.lineHeaderAt >= 0) this.lineStream = streamOf(b, this.lineHeaderAt);
    return this.lineStream;
  }

  private checkNotice(b: Buffer, start: number, end: number, base: number): void {
    if (b.compare(NOTICE, 0, NOTICE.length, start, start + NOTICE.length) !== 0) return;
    const rest = b.toString('latin1', start + NOTICE.length, Math.min(end, start + NOTICE.length + 24));
    const m = /^(\d+) bytes\./.exec(rest);
    if (!m) return;
    this.limitHit = true;
    this.sink.outputLimit({ offset: base + start, limitBytes: Number(m[1]) });
  }

  private reportLine(b: Buffer, start: number, end: number, base: number): void {
    let stop = Math.min(end, start + MAX_LINE_TEXT_BYTES);
    if (stop > start && b[stop - 1] === 0x0d) stop--;
    const timeNs = this.lineStamped ? this.currentLineTime(b) : undefined;
    const stream = this.lineStamped ? this.currentLineStream(b) : undefined;
    this.sink.line({
      text: b.toString('utf8', start, stop),
      ...(stream !== undefined ? { stream } : {}),
      ...(timeNs !== undefined ? { timeNs } : {}),
      offset: base + start,
    });
  }
}
