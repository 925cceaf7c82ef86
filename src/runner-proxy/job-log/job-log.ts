// The live job log, reassembled by offset and parsed in one pass as it streams.
//
// The runner uploads its log with `PATCH /jobs/:id/trace` and `Content-Range:
// start-end`; bytes can be re-sent (416, the runner's own retries, a full
// re-upload from 0 after a 412), so bytes are placed by offset and parsed
// exactly once, up to a high-water mark (docs/job-log.md#reassembly).
//
// What is found: FF_TIMESTAMPS entry headers (`YYYY-MM-DDTHH:MM:SS.ffffffZ SSO `
// or `…SSO+`), section markers (`section_start|end:<unix s>:<name>[opts]\r\x1b[0K`)
// and the runner's output-limit notice. An entry flagged `+` continues the
// previous entry of its stream: that `\n` was added by the runner's
// timestamper (one per stream id and type) and GitLab removes it again when it
// renders the log, so markers and captured lines are matched on the joined
// line (docs/job-log.md#continuation-lines).
//
// One pass per PATCH body, never concatenated: Buffer.indexOf finds each line
// end and, with a forward-only cursor, each `section_`; a marker in progress
// is carried by its own matcher (≤ 600 bytes) and a line start too short to
// hold a stamp header by at most 31 bytes. Lines are decoded to text only
// while a consumer asks for them (`captureLines`), so script output is scanned,
// never copied or decoded (docs/job-log.md#one-pass-parser).
//
// Pure: no I/O, no clock.
import { Fed, MAX_MARKER_BYTES, MarkerCandidate, SECTION_PREFIX, candidateStart, indexOfSection, prefixAtEnd } from './section-marker.js';

export { MAX_MARKER_BYTES } from './section-marker.js';

/** A section marker as it appears in the log. */
export interface SectionMarker {
  readonly kind: 'start' | 'end';
  readonly name: string;
  /** The raw `[k=v,…]` options of a start marker, without brackets. */
  readonly options?: string;
  /** The marker's own whole Unix seconds. */
  readonly seconds: number;
  /** Epoch ns: the stamp of the entry holding the marker's first byte when there is one, else `seconds`. */
  readonly timeNs: bigint;
  /** Whether `timeNs` comes from a stamp (µs precision). */
  readonly stamped: boolean;
  /** Stream id of that entry (0 = runner, 1 = job script / step-runner, ≥15 services); undefined without FF_TIMESTAMPS. */
  readonly stream?: number;
  /** Log offset of the marker's first byte. */
  readonly offset: number;
}

/** One rendered log line, decoded (only while `captureLines` is on). */
export interface LogLine {
  /**
   * The line as GitLab renders it: continuation entries joined, without stamp
   * headers, cut at section markers, only what follows its last lone `\r`,
   * without the trailing `\r`; as UTF-8 (capped).
   */
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

/** Where a marker in progress came from: one per log entry its bytes span. */
interface CandidateSegment {
  /** Index in the candidate's bytes where this entry's bytes begin. */
  readonly at: number;
  /** Log offset of that byte. */
  readonly offset: number;
  readonly timeNs?: bigint;
  readonly stream?: number;
}

type SerialSegment = Omit<CandidateSegment, 'timeNs'> & { timeNs?: string };

interface SerialCandidate {
  readonly bytes: string;
  readonly segments: readonly SerialSegment[];
}

/** A marker in progress whose entry ended; only a `+` entry of the same stream continues it. */
interface Suspended {
  readonly candidate: MarkerCandidate;
  readonly segments: CandidateSegment[];
}

/** JSON-serialisable parser state, for resuming after a restart. */
export interface JobLogState {
  readonly v: 2;
  readonly offset: number;
  /** A line start too short yet to tell whether it holds a stamp header (base64, < 32 bytes). */
  readonly carry: string;
  readonly atLineStart: boolean;
  /** The open entry's stamp header (base64, 32 bytes), when it has one. */
  readonly entryHeader?: string;
  /** A marker in progress: its bytes so far (base64) and the entries they came from. */
  readonly candidate?: SerialCandidate;
  /** Markers in progress at the end of an entry that a `+` entry of the same stream may continue. */
  readonly suspended?: readonly (SerialCandidate & { readonly key: number })[];
  /** Progress through an output-limit notice at the start of the open line. */
  readonly notice?: { readonly index: number; readonly value: number; readonly offset: number };
  readonly resync: boolean;
  readonly firstTimestamp?: string;
  readonly lastTimestamp?: string;
  readonly outputLimitHit: boolean;
  readonly gapBytes: number;
  readonly duplicateBytes: number;
}

/** The state written before the one-pass parser; restored as far as it still applies. */
interface JobLogStateV1 {
  readonly v: 1;
  readonly offset: number;
  readonly firstTimestamp?: string;
  readonly lastTimestamp?: string;
  readonly outputLimitHit: boolean;
  readonly gapBytes: number;
  readonly duplicateBytes: number;
}

export class JobLogStateError extends Error {
  readonly code = 'JOB_LOG_STATE_INVALID';
  constructor(what: string) {
    super(`job log state: ${what}`);
    this.name = 'JobLogStateError';
  }
}

const NL = 0x0a;
const CR = 0x0d;
const ESC = 0x1b;
const PLUS = 0x2b;
export const HEADER_BYTES = 32;
/** The most streams with a marker in progress at once; more are dropped (only forged logs get there). */
const MAX_SUSPENDED = 16;
/** The runner's timestamper cuts an unterminated line at this size (timestamper.go bufSize). */
const STAMPER_BUFFER_BYTES = 8 * 1024;
/** Captured lines are decoded up to this many bytes. */
export const MAX_LINE_TEXT_BYTES = 4096;
/**
 * The most the parser keeps of a job's log at any time: a short line start
 * (< 32 bytes), the markers in progress (the open entry's, and one per stream
 * a `+` entry may continue) and a captured line. Never the log.
 */
export const MAX_CARRY_BYTES = HEADER_BYTES + (MAX_SUSPENDED + 1) * MAX_MARKER_BYTES + MAX_LINE_TEXT_BYTES;

// `\x1b[33;1mJob's log exceeded limit of N bytes.` written below the stamper
// (docs/job-log.md#output-limit).
const NOTICE = Buffer.from("\x1b[33;1mJob's log exceeded limit of ", 'latin1');
const NOTICE_TAIL = Buffer.from(' bytes.', 'latin1');
const NOTICE_DIGITS = NOTICE.length;
const NOTICE_MAX_DIGITS = 15;
const EMPTY = Buffer.alloc(0);
/** Bytes that can end a proper prefix of `section_` (s, e, c, t, i, o, n). */
const ENDS_PREFIX = new Uint8Array(256);
for (const c of 'section') ENDS_PREFIX[c.charCodeAt(0)] = 1;

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70));
}

function num(b: Uint8Array, i: number, n: number): number {
  let v = 0;
  for (let k = 0; k < n; k++) v = v * 10 + (b[i + k]! - 48);
  return v;
}

const DIGIT_POSITIONS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25];

/**
 * Whether a 32-byte FF_TIMESTAMPS header starts at `i`: fixed punctuation,
 * stream, type, flag (the digits are checked when a time is read, by stampTimeNs).
 */
export function isStampHeader(b: Uint8Array, i: number): boolean {
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
    (b[i + 31] === 0x20 || b[i + 31] === PLUS) && // ' ' | +
    isHex(b[i + 28]) &&
    isHex(b[i + 29])
  );
}

/** Epoch ns of the stamp at `i`, or undefined when its digits are not a date. */
export function stampTimeNs(b: Uint8Array, i: number): bigint | undefined {
  for (const d of DIGIT_POSITIONS) if (!isDigit(b[i + d])) return undefined;
  const ms = Date.UTC(num(b, i, 4), num(b, i + 5, 2) - 1, num(b, i + 8, 2), num(b, i + 11, 2), num(b, i + 14, 2), num(b, i + 17, 2));
  if (!Number.isFinite(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt(num(b, i + 20, 6)) * 1000n;
}

function hexValue(c: number): number {
  return c <= 57 ? c - 48 : (c | 0x20) - 87;
}

function streamOf(b: Uint8Array, i: number): number {
  return hexValue(b[i + 28]!) * 16 + hexValue(b[i + 29]!);
}

/** A stream's timestamper is keyed by its id and type. */
function keyOf(b: Uint8Array, i: number): number {
  return streamOf(b, i) * 2 + (b[i + 30] === 0x45 ? 1 : 0);
}

function serialCandidate(c: MarkerCandidate, segments: readonly CandidateSegment[]): SerialCandidate {
  return {
    bytes: c.bytes.toString('base64', 0, c.length),
    segments: segments.map(({ timeNs, ...g }) => ({ ...g, ...(timeNs !== undefined ? { timeNs: timeNs.toString() } : {}) })),
  };
}

function rebase(segments: readonly CandidateSegment[], start: number): CandidateSegment[] {
  let first = 0;
  for (let i = 0; i < segments.length; i++) if (segments[i]!.at <= start) first = i;
  const out: CandidateSegment[] = [];
  for (let i = first; i < segments.length; i++) {
    const s = segments[i]!;
    out.push(i === first ? { ...s, at: 0, offset: s.offset + (start - s.at) } : { ...s, at: s.at - start });
  }
  return out;
}

/**
 * Offset reassembly plus the incremental parser. Feed it what the upstream
 * accepted; it calls the sink synchronously, in log order.
 */
export class JobLog {
  /** Decode rendered lines and pass them to `sink.line` (switch on only where needed: it costs). */
  captureLines = false;

  private offsetValue = 0;
  // A line start with fewer than HEADER_BYTES bytes so far and no `\n`.
  private readonly carryBuf = Buffer.alloc(HEADER_BYTES);
  private carryLen = 0;
  private atLineStart = true;
  // The open entry: its header lives in the current body or, across bodies, in `entryHeader`.
  private entryStamped = false;
  /** Stream id × 2 + (stderr ? 1 : 0) of the open entry; -1 when unstamped, -2 not read yet. */
  private entryKey = -1;
  /** Content bytes of the open entry so far. */
  private entryBytes = 0;
  private entryBuf: Uint8Array = EMPTY;
  private entryAt = 0;
  private readonly entryHeader = Buffer.alloc(HEADER_BYTES);
  // A marker in progress.
  private candidate = new MarkerCandidate();
  private segments: CandidateSegment[] = [];
  private readonly suspended = new Map<number, Suspended>();
  // An output-limit notice in progress (-1: none).
  private noticeIndex = -1;
  private noticeValue = 0;
  private noticeOffset = 0;
  // The rendered line being captured.
  private capture: Buffer | undefined;
  private captureLen = 0;
  private captureOpen = false;
  /** The captured line's entry ended, but a `+` entry of its stream may continue it. */
  private captureSuspended = false;
  private captureKey = -1;
  /** Where the open entry's bytes begin in the capture. */
  private captureEntryStart = 0;
  private captureFrom = 0;
  /** The body being scanned, while it is (captured bytes are copied out of it). */
  private captureBody: Buffer | undefined;
  private lineOffset = 0;
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
    state?: JobLogState | JobLogStateV1,
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

  /** Bytes of the log held between bodies (≤ MAX_CARRY_BYTES). */
  get retainedBytes(): number {
    let held = 0;
    for (const h of this.suspended.values()) held += h.candidate.length;
    return this.carryLen + this.candidate.length + held + (this.captureOpen ? this.captureLen : 0);
  }

  get gapBytes(): number {
    return this.gaps;
  }

  get duplicateBytes(): number {
    return this.duplicates;
  }

  /**
   * One PATCH body the upstream accepted; `start` from its `Content-Range`.
   * The body may be given as the chunks it arrived in: they are parsed in
   * place, one after the other, never joined.
   */
  accept(start: number, body: Buffer | readonly Buffer[]): AcceptResult {
    const parts: readonly Buffer[] = Buffer.isBuffer(body) ? [body] : body;
    let length = 0;
    for (const p of parts) length += p.length;
    if (!Number.isSafeInteger(start) || start < 0 || length === 0) return { parsed: 0, duplicate: 0, gap: 0 };
    const end = start + length;
    if (end <= this.offsetValue) {
      this.duplicates += length;
      return { parsed: 0, duplicate: length, gap: 0 };
    }
    let gap = 0;
    let duplicate = 0;
    if (start > this.offsetValue) {
      // Bytes we never saw (a missed PATCH, a restart): nothing held continues
      // into this body, so drop it and restart at the next line.
      gap = start - this.offsetValue;
      this.gaps += gap;
      this.dropHeld();
      this.resync = true;
    } else if (start < this.offsetValue) {
      duplicate = this.offsetValue - start;
      this.duplicates += duplicate;
    }
    let skip = duplicate;
    let at = start + duplicate;
    this.offsetValue = end;
    for (const part of parts) {
      if (skip >= part.length) {
        skip -= part.length;
        continue;
      }
      const piece = skip > 0 ? part.subarray(skip) : part;
      skip = 0;
      this.feed(piece, at);
      at += piece.length;
    }
    return { parsed: length - duplicate, duplicate, gap };
  }

  /** The log is complete: parse what is still held as a last line without `\n`. */
  end(): void {
    if (this.carryLen > 0) {
      const head = Buffer.from(this.carryBuf.subarray(0, this.carryLen));
      this.carryLen = 0;
      this.scan(head, this.offsetValue - head.length, 0, true);
    }
    if (!this.atLineStart) this.endEntry();
    this.atLineStart = true;
    this.candidate.reset();
    this.segments = [];
    this.suspended.clear();
    this.captureSuspended = false;
    this.endLine(true);
  }

  snapshot(): JobLogState {
    const openEntry = !this.atLineStart && this.entryStamped;
    return {
      v: 2,
      offset: this.offsetValue,
      carry: this.carryBuf.toString('base64', 0, this.carryLen),
      atLineStart: this.atLineStart,
      ...(openEntry
        ? { entryHeader: Buffer.from(this.entryBuf.subarray(this.entryAt, this.entryAt + HEADER_BYTES)).toString('base64') }
        : {}),
      ...(this.candidate.active ? { candidate: serialCandidate(this.candidate, this.segments) } : {}),
      ...(this.suspended.size > 0
        ? { suspended: [...this.suspended].map(([key, h]) => ({ key, ...serialCandidate(h.candidate, h.segments) })) }
        : {}),
      ...(this.noticeIndex >= 0 ? { notice: { index: this.noticeIndex, value: this.noticeValue, offset: this.noticeOffset } } : {}),
      resync: this.resync,
      ...(this.firstTs !== undefined ? { firstTimestamp: this.firstTs.toString() } : {}),
      ...(this.lastTs !== undefined ? { lastTimestamp: this.lastTs.toString() } : {}),
      outputLimitHit: this.limitHit,
      gapBytes: this.gaps,
      duplicateBytes: this.duplicates,
    };
  }

  private restoreState(s: JobLogState | JobLogStateV1): void {
    const count = (v: unknown, what: string): number => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new JobLogStateError(`${what} is not a count`);
      return v;
    };
    const time = (v: unknown, what: string): bigint | undefined => {
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || !/^\d{1,25}$/.test(v)) throw new JobLogStateError(`${what} is not a decimal time`);
      return BigInt(v);
    };
    this.offsetValue = count(s.offset, 'offset');
    this.firstTs = time(s.firstTimestamp, 'firstTimestamp');
    this.lastTs = time(s.lastTimestamp, 'lastTimestamp');
    this.limitHit = s.outputLimitHit === true;
    this.gaps = count(s.gapBytes, 'gapBytes');
    this.duplicates = count(s.duplicateBytes, 'duplicateBytes');
    if (s.v === 1) {
      // An older parser's mid-line state cannot be carried over: pick up at the next line.
      this.resync = this.offsetValue > 0;
      return;
    }
    if (s.v !== 2) throw new JobLogStateError(`unknown version ${String((s as { v: unknown }).v)}`);
    const carry = Buffer.from(typeof s.carry === 'string' ? s.carry : '', 'base64');
    if (carry.length >= HEADER_BYTES) throw new JobLogStateError('carry is too long');
    carry.copy(this.carryBuf);
    this.carryLen = carry.length;
    this.atLineStart = s.atLineStart === true;
    this.resync = s.resync === true;
    if (s.entryHeader !== undefined) {
      const h = Buffer.from(s.entryHeader, 'base64');
      if (h.length !== HEADER_BYTES || !isStampHeader(h, 0)) throw new JobLogStateError('entryHeader is not a stamp header');
      h.copy(this.entryHeader);
      this.entryBuf = this.entryHeader;
      this.entryAt = 0;
      this.entryStamped = true;
      this.entryKey = keyOf(h, 0);
    }
    const candidate = (raw: SerialCandidate): Suspended => {
      const bytes = Buffer.from(typeof raw.bytes === 'string' ? raw.bytes : '', 'base64');
      if (bytes.length === 0 || bytes.length > MAX_MARKER_BYTES || !Array.isArray(raw.segments)) {
        throw new JobLogStateError('candidate is malformed');
      }
      const c = new MarkerCandidate();
      for (const byte of bytes) if (c.feed(byte) !== Fed.More) throw new JobLogStateError('candidate is not a marker in progress');
      const segments = (raw.segments as readonly Partial<Record<keyof SerialSegment, unknown>>[]).map((g) => ({
        at: count(g.at, 'candidate segment'),
        offset: count(g.offset, 'candidate segment'),
        ...(g.timeNs !== undefined ? { timeNs: time(g.timeNs, 'candidate segment') } : {}),
        ...(g.stream !== undefined ? { stream: count(g.stream, 'candidate segment') } : {}),
      }));
      if (segments.length === 0) throw new JobLogStateError('candidate has no segments');
      return { candidate: c, segments };
    };
    if (s.candidate !== undefined) {
      const c = candidate(s.candidate);
      this.candidate = c.candidate;
      this.segments = c.segments;
    }
    for (const h of (s.suspended ?? []).slice(0, MAX_SUSPENDED)) this.suspended.set(count(h.key, 'suspended key'), candidate(h));
    if (s.notice !== undefined) {
      this.noticeIndex = count(s.notice.index, 'notice');
      this.noticeValue = count(s.notice.value, 'notice');
      this.noticeOffset = count(s.notice.offset, 'notice');
    }
  }

  private dropHeld(): void {
    this.carryLen = 0;
    this.candidate.reset();
    this.segments = [];
    this.noticeIndex = -1;
    this.suspended.clear();
    this.captureOpen = false;
    this.captureSuspended = false;
    this.atLineStart = true;
  }

  /** One body at log offset `base`: first complete a short line start held from before, then the rest in place. */
  private feed(b: Buffer, base: number): void {
    let from = 0;
    while (this.carryLen > 0 && from < b.length) {
      const take = Math.min(HEADER_BYTES - this.carryLen, b.length - from);
      const head = Buffer.allocUnsafe(this.carryLen + take);
      this.carryBuf.copy(head, 0, 0, this.carryLen);
      b.copy(head, this.carryLen, from, from + take);
      const headBase = base + from - this.carryLen;
      this.carryLen = 0;
      this.scan(head, headBase, 0, false);
      from += take;
    }
    if (from < b.length) this.scan(b, base, from, false);
  }

  /** Parse b[pos…]; `base` is the log offset of b[0]. */
  private scan(b: Buffer, base: number, pos: number, final: boolean): void {
    const end = b.length;
    let nextSection = -2; // -2: not searched yet; -1: none left in `b`
    let lastHeader = -1;
    let lineNl = -2; // the `\n` ending the line just started, when already searched
    this.captureBody = b;
    while (pos < end) {
      if (this.resync) {
        const nl = b.indexOf(NL, pos);
        if (nl < 0) break;
        this.resync = false;
        this.atLineStart = true;
        pos = nl + 1;
        continue;
      }
      if (this.atLineStart) {
        lineNl = b.indexOf(NL, pos);
        if (end - pos < HEADER_BYTES && !final && lineNl < 0) {
          // A stamp header may be cut here: hold these few bytes for the next body.
          b.copy(this.carryBuf, 0, pos, end);
          this.carryLen = end - pos;
          break;
        }
        // A header holds no `\n`: the line must be longer than one.
        const stamped = (lineNl < 0 ? end : lineNl) - pos >= HEADER_BYTES && isStampHeader(b, pos);
        const continues = stamped && b[pos + 31] === PLUS;
        this.atLineStart = false;
        this.entryStamped = stamped;
        this.entryKey = stamped ? -2 : -1;
        this.entryBytes = 0;
        if (stamped) {
          this.entryBuf = b;
          this.entryAt = pos;
          lastHeader = pos;
          this.firstTs ??= stampTimeNs(b, pos);
          pos += HEADER_BYTES;
        }
        if (this.captureSuspended || this.suspended.size > 0 || this.captureLines) this.startEntry(continues, base + pos);
        else this.captureOpen = false;
        if (!stamped && b[pos] === ESC) {
          this.noticeIndex = 0;
          this.noticeValue = 0;
          this.noticeOffset = base + pos;
        }
      }
      const nl = lineNl !== -2 ? lineNl : b.indexOf(NL, pos);
      lineNl = -2;
      const segEnd = nl < 0 ? end : nl;
      if (this.noticeIndex >= 0) this.feedNotice(b, pos, segEnd);
      this.captureFrom = pos;
      let p = pos;
      if (this.candidate.active) p = this.feedCandidate(b, base, p, segEnd);
      while (p < segEnd) {
        if (nextSection !== -1 && nextSection < p) nextSection = indexOfSection(b, p);
        let s = nextSection;
        if (s < 0 || s + SECTION_PREFIX.length > segEnd) {
          // Not whole in this entry: a `section_` may still be cut at its end
          // (by the body's end, or by a continuation join when stamped).
          s =
            (segEnd === end || this.entryStamped) && ENDS_PREFIX[b[segEnd - 1]!] === 1
              ? prefixAtEnd(b, Math.max(p, segEnd - (SECTION_PREFIX.length - 1)), segEnd)
              : -1;
          if (s < 0) break;
        }
        this.segments = [{ at: 0, offset: base + s, ...this.entryFacts() }];
        p = this.feedCandidate(b, base, s, segEnd);
      }
      if (this.captureOpen) this.appendCaptureTo(segEnd);
      this.entryBytes += segEnd - pos;
      if (nl < 0) break;
      if (this.noticeIndex >= 0 || this.candidate.length > 0 || this.captureOpen) this.endEntry();
      pos = nl + 1;
      this.atLineStart = true;
    }
    this.captureBody = undefined;
    if (lastHeader >= 0) {
      const t = stampTimeNs(b, lastHeader);
      if (t !== undefined) this.lastTs = t;
    }
    // Before `b` goes away, keep the open entry's header.
    if (!this.atLineStart && this.entryStamped && this.entryBuf === b) {
      b.copy(this.entryHeader, 0, this.entryAt, this.entryAt + HEADER_BYTES);
      this.entryBuf = this.entryHeader;
      this.entryAt = 0;
    }
  }

  /** The open entry's stream key (read from its header on first use). */
  private key(): number {
    if (this.entryKey === -2) this.entryKey = keyOf(this.entryBuf, this.entryAt);
    return this.entryKey;
  }

  private entryFacts(): { timeNs?: bigint; stream?: number } {
    if (!this.entryStamped) return {};
    const timeNs = stampTimeNs(this.entryBuf, this.entryAt);
    return { ...(timeNs !== undefined ? { timeNs } : {}), stream: streamOf(this.entryBuf, this.entryAt) };
  }

  /** Feed b[p, segEnd) to the marker in progress until it completes, fails for good, or the bytes run out. */
  private feedCandidate(b: Buffer, base: number, p: number, segEnd: number): number {
    const c = this.candidate;
    while (p < segEnd) {
      const r = c.feed(b[p++]!);
      if (r === Fed.More) continue;
      if (r === Fed.Complete) {
        this.complete(base + p, p);
        return p;
      }
      this.rescan();
      if (!c.active) return p;
    }
    return p;
  }

  /**
   * A candidate failed: GitLab's scanner would try again one byte further, so
   * search its own bytes for the next `section_` (only ever a marker in
   * progress: a whole marker needs a `:` where the failed one could not take it).
   */
  private rescan(): void {
    const c = this.candidate;
    const old = this.segments;
    let pending = Buffer.from(c.bytes.subarray(1, c.length));
    let at = 1;
    c.reset();
    this.segments = [];
    while (pending.length > 0) {
      const j = candidateStart(pending, 0, pending.length);
      if (j < 0) return;
      this.segments = rebase(old, at + j);
      let k = j;
      let r = Fed.More;
      for (; k < pending.length; k++) {
        r = c.feed(pending[k]!);
        if (r !== Fed.More) break;
      }
      if (r === Fed.More) return;
      if (r === Fed.Complete) {
        this.emitMarker();
        pending = pending.subarray(k + 1);
        at += k + 1;
      } else {
        c.reset();
        this.segments = [];
        pending = pending.subarray(j + 1);
        at += j + 1;
      }
    }
  }

  /** A marker ended at b[q - 1] (log offset `offset`): it also ends the rendered line before it, as GitLab draws it. */
  private complete(offset: number, q: number): void {
    if (this.captureOpen) {
      // Pass the bytes since the last append, then take the marker's own back out.
      this.appendCaptureTo(q);
      this.captureLen = Math.max(0, this.captureLen - this.candidate.length);
    }
    this.endLine(false);
    this.emitMarker();
    this.beginLine(offset, q);
  }

  private emitMarker(): void {
    const m = this.candidate.parsed();
    const first = this.segments[0] ?? { at: 0, offset: 0 };
    this.candidate.reset();
    this.segments = [];
    this.sink.marker({
      kind: m.kind,
      name: m.name,
      ...(m.options !== undefined ? { options: m.options } : {}),
      seconds: m.seconds,
      timeNs: first.timeNs ?? BigInt(m.seconds) * 1_000_000_000n,
      stamped: first.timeNs !== undefined,
      ...(first.stream !== undefined ? { stream: first.stream } : {}),
      offset: first.offset,
    });
  }

  /**
   * An entry starts (its content at log offset `offset`). A `+` entry resumes
   * what its stream left in progress; any other entry ends it first: only the
   * runner's own cut is undone (docs/job-log.md#continuation-lines).
   */
  private startEntry(continues: boolean, offset: number): void {
    const key = this.key();
    if (this.captureSuspended) {
      this.captureSuspended = false;
      if (continues && key === this.captureKey) this.captureEntryStart = this.captureLen;
      else {
        // A marker its stream may still complete is not text of this line.
        const held = this.suspended.get(this.captureKey);
        if (held) this.captureLen = Math.max(0, this.captureLen - held.candidate.length);
        this.endLine(held === undefined);
        this.beginLine(offset);
      }
    } else this.beginLine(offset);
    if (key >= 0 && this.suspended.size > 0) {
      const held = this.suspended.get(key);
      if (held) {
        this.suspended.delete(key);
        if (continues) {
          this.candidate = held.candidate;
          this.segments = held.segments;
          this.segments.push({ at: this.candidate.length, offset, ...this.entryFacts() });
        }
      }
    }
  }

  /** The open entry ends at its `\n`. */
  private endEntry(): void {
    this.noticeIndex = -1;
    if (this.candidate.active) {
      if (this.entryStamped) {
        // The `\n` may be the timestamper's own: keep the marker for a `+` entry of this stream.
        if (this.suspended.size >= MAX_SUSPENDED) this.suspended.delete(this.suspended.keys().next().value!);
        this.suspended.set(this.key(), { candidate: this.candidate, segments: this.segments });
        this.candidate = new MarkerCandidate();
      } else this.candidate.reset();
      this.segments = [];
    }
    if (!this.captureOpen) return;
    // The runner only continues an entry it flushed at a `\r` or cut at its buffer's size.
    const b = this.capture;
    const continuable =
      this.entryStamped &&
      (this.entryBytes >= STAMPER_BUFFER_BYTES ||
        this.captureLen >= MAX_LINE_TEXT_BYTES ||
        (b !== undefined && b.subarray(this.captureEntryStart, this.captureLen).includes(CR)));
    if (continuable) this.captureSuspended = true;
    else this.endLine(true);
  }

  private feedNotice(b: Buffer, from: number, to: number): void {
    for (let i = from; i < to && this.noticeIndex >= 0; i++) {
      const c = b[i]!;
      const k = this.noticeIndex;
      if (k < NOTICE_DIGITS) {
        this.noticeIndex = c === NOTICE[k] ? k + 1 : -1;
      } else if (k === NOTICE_DIGITS || k < NOTICE_DIGITS + NOTICE_MAX_DIGITS) {
        if (isDigit(c)) {
          this.noticeValue = this.noticeValue * 10 + (c - 48);
          this.noticeIndex = k + 1;
        } else if (c === NOTICE_TAIL[0] && k > NOTICE_DIGITS) {
          this.noticeIndex = NOTICE_DIGITS + NOTICE_MAX_DIGITS + 1;
        } else this.noticeIndex = -1;
      } else {
        const t = k - (NOTICE_DIGITS + NOTICE_MAX_DIGITS);
        if (c !== NOTICE_TAIL[t]) this.noticeIndex = -1;
        else if (t + 1 === NOTICE_TAIL.length) {
          this.noticeIndex = -1;
          this.limitHit = true;
          this.sink.outputLimit({ offset: this.noticeOffset, limitBytes: this.noticeValue });
        } else this.noticeIndex = k + 1;
      }
    }
  }

  // ---- captured lines -------------------------------------------------

  /** A rendered line starts at log offset `offset` (and, when given, at b[from] of the body being scanned). */
  private beginLine(offset: number, from?: number): void {
    this.captureOpen = this.captureLines;
    this.captureSuspended = false;
    if (!this.captureOpen) return;
    this.captureKey = this.key();
    this.captureLen = 0;
    this.captureEntryStart = 0;
    this.lineOffset = offset;
    const facts = this.entryFacts();
    this.lineTimeNs = facts.timeNs;
    this.lineStream = facts.stream;
    if (from !== undefined) this.captureFrom = from;
  }

  private appendCaptureTo(to: number): void {
    const b = this.captureBody;
    const from = this.captureFrom;
    this.captureFrom = to;
    if (!b || to <= from) return;
    this.capture ??= Buffer.alloc(MAX_LINE_TEXT_BYTES);
    const n = Math.min(to - from, MAX_LINE_TEXT_BYTES - this.captureLen);
    if (n > 0) this.captureLen += b.copy(this.capture, this.captureLen, from, from + n);
  }

  /** The rendered line ends, at a line break (`\r\n` or `\n`) or at a marker. */
  private endLine(atBreak: boolean): void {
    if (!this.captureOpen) return;
    this.captureOpen = false;
    if (!this.captureLines || !this.capture) return;
    const buf = this.capture;
    let stop = this.captureLen;
    if (atBreak && stop > 0 && buf[stop - 1] === CR) stop--;
    if (stop <= 0) return;
    // A lone `\r` returns to the line's start: GitLab shows what follows the last one.
    const cr = buf.lastIndexOf(CR, stop - 1);
    const startAt = cr >= 0 && cr < stop ? cr + 1 : 0;
    if (stop <= startAt) return;
    this.sink.line({
      text: buf.toString('utf8', startAt, stop),
      ...(this.lineStream !== undefined ? { stream: this.lineStream } : {}),
      ...(this.lineTimeNs !== undefined ? { timeNs: this.lineTimeNs } : {}),
      offset: this.lineOffset,
    });
  }
}
