// An incremental matcher for one section marker,
// `section_(start|end):<digits>:<name>[<k=v,…>]\r\x1b[0K`, fed byte by byte.
//
// The grammar is GitLab's own (`lib/gitlab/regex.rb` build_trace_section_regex,
// see docs/job-log.md#section-markers): digits 1–19, name `[A-Za-z0-9_.-]`
// 1–255, options `\w+=\w+(, ?\w+=\w+)*`, and the `\r\x1b[0K` suffix. Because it
// keeps its own state (and the candidate's bytes, at most MAX_MARKER_BYTES), a
// marker may be cut anywhere: across PATCH bodies or across a `+` continuation
// join (docs/job-log.md#continuation-lines), without keeping the log around it.
//
// Pure: no I/O.

/** Longest marker accepted: prefix, 19 digits, a 255-byte name, options, suffix. */
export const MAX_MARKER_BYTES = 600;

export const SECTION_PREFIX = Buffer.from('section_', 'latin1');

const START = Buffer.from('start:', 'latin1');
const END = Buffer.from('end:', 'latin1');
const SUFFIX = Buffer.from('\r\x1b[0K', 'latin1');

const enum Phase {
  Prefix,
  Kind,
  KindStart,
  KindEnd,
  Digits,
  Name,
  OptKey,
  OptValue,
  OptSeparator,
  Suffix,
}

/** What a feed step did. */
export const enum Fed {
  /** The byte extends the candidate; more are needed. */
  More,
  /** The byte completed a marker. */
  Complete,
  /** The byte cannot extend the candidate. */
  Invalid,
}

export interface ParsedMarker {
  readonly kind: 'start' | 'end';
  readonly seconds: number;
  readonly name: string;
  readonly options?: string;
  /** Bytes the marker spans (as joined). */
  readonly length: number;
}

function isWord(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
}

function isNameChar(c: number): boolean {
  return isWord(c) || c === 0x2e || c === 0x2d;
}

/**
 * One candidate marker in progress. `feed` takes one byte at a time; the bytes
 * are kept so a failed candidate can be searched again for a marker starting
 * inside it (as GitLab's scanner would find it).
 */
export class MarkerCandidate {
  /** The candidate's bytes; one more than a marker can hold, so the byte that overflows it is kept for the search again. */
  readonly bytes = Buffer.alloc(MAX_MARKER_BYTES + 1);
  length = 0;
  private phase = Phase.Prefix;
  private index = 0;
  private count = 0;
  private kind: 'start' | 'end' = 'start';
  private digitsAt = 0;
  private nameAt = 0;
  private nameEnd = 0;
  private optionsAt = -1;
  private optionsEnd = -1;

  reset(): void {
    this.length = 0;
    this.phase = Phase.Prefix;
    this.index = 0;
    this.count = 0;
    this.optionsAt = -1;
    this.optionsEnd = -1;
  }

  get active(): boolean {
    return this.length > 0;
  }

  feed(c: number): Fed {
    const at = this.length;
    this.bytes[this.length++] = c;
    if (at >= MAX_MARKER_BYTES) return Fed.Invalid;
    switch (this.phase) {
      case Phase.Prefix:
        if (c !== SECTION_PREFIX[this.index]) return Fed.Invalid;
        if (++this.index === SECTION_PREFIX.length) this.phase = Phase.Kind;
        return Fed.More;
      case Phase.Kind:
        if (c === 0x73) {
          this.phase = Phase.KindStart;
          this.kind = 'start';
        } else if (c === 0x65) {
          this.phase = Phase.KindEnd;
          this.kind = 'end';
        } else return Fed.Invalid;
        this.index = 1;
        return Fed.More;
      case Phase.KindStart:
      case Phase.KindEnd: {
        const word = this.phase === Phase.KindStart ? START : END;
        if (c !== word[this.index]) return Fed.Invalid;
        if (++this.index === word.length) {
          this.phase = Phase.Digits;
          this.count = 0;
          this.digitsAt = at + 1;
        }
        return Fed.More;
      }
      case Phase.Digits:
        if (c >= 0x30 && c <= 0x39) return ++this.count <= 19 ? Fed.More : Fed.Invalid;
        if (c !== 0x3a || this.count === 0) return Fed.Invalid;
        this.phase = Phase.Name;
        this.count = 0;
        this.nameAt = at + 1;
        return Fed.More;
      case Phase.Name:
        if (isNameChar(c)) return ++this.count <= 255 ? Fed.More : Fed.Invalid;
        if (this.count === 0) return Fed.Invalid;
        this.nameEnd = at;
        if (c === 0x5b) {
          this.phase = Phase.OptKey;
          this.count = 0;
          this.optionsAt = at + 1;
          return Fed.More;
        }
        return this.suffix(c, 0);
      case Phase.OptKey:
        if (isWord(c)) {
          this.count++;
          return Fed.More;
        }
        if (c !== 0x3d || this.count === 0) return Fed.Invalid;
        this.phase = Phase.OptValue;
        this.count = 0;
        return Fed.More;
      case Phase.OptValue:
        if (isWord(c)) {
          this.count++;
          return Fed.More;
        }
        if (this.count === 0) return Fed.Invalid;
        if (c === 0x2c) {
          this.phase = Phase.OptSeparator;
          return Fed.More;
        }
        if (c !== 0x5d) return Fed.Invalid;
        this.optionsEnd = at;
        this.phase = Phase.Suffix;
        this.index = 0;
        return Fed.More;
      case Phase.OptSeparator:
        this.phase = Phase.OptKey;
        this.count = 0;
        if (c === 0x20) return Fed.More;
        if (!isWord(c)) return Fed.Invalid;
        this.count = 1;
        return Fed.More;
      case Phase.Suffix:
        return this.suffix(c, this.index);
    }
  }

  private suffix(c: number, index: number): Fed {
    if (c !== SUFFIX[index]) return Fed.Invalid;
    this.phase = Phase.Suffix;
    this.index = index + 1;
    return this.index === SUFFIX.length ? Fed.Complete : Fed.More;
  }

  /** The marker, once `feed` returned Complete. */
  parsed(): ParsedMarker {
    const b = this.bytes;
    return {
      kind: this.kind,
      seconds: Number(b.toString('latin1', this.digitsAt, this.nameAt - 1)),
      name: b.toString('latin1', this.nameAt, this.nameEnd),
      ...(this.optionsAt >= 0 ? { options: b.toString('latin1', this.optionsAt, this.optionsEnd) } : {}),
      length: this.length,
    };
  }
}

/**
 * Where a proper prefix of `section_` starts that runs to `end` (so the
 * marker may continue in bytes not yet seen), or -1. Looks at most 7 bytes back.
 */
export function prefixAtEnd(b: Uint8Array, from: number, end: number): number {
  for (let k = Math.min(SECTION_PREFIX.length - 1, end - from); k >= 1; k--) {
    const i = end - k;
    if (b[i] !== 0x73) continue;
    let j = 1;
    while (j < k && b[i + j] === SECTION_PREFIX[j]) j++;
    if (j === k) return i;
  }
  return -1;
}

const UNDERSCORE = 0x5f;

/**
 * First index ≥ `from` of a whole `section_` in b, or -1: the same answer as
 * `b.indexOf(SECTION_PREFIX, from)`, found by a byte search for its `_` and a
 * look at the seven bytes before it. Node's substring search skips by the
 * last byte's table, and `section` is made of the commonest letters of a log,
 * so it crawls (2.1 GB/s on the bench's log); a single-byte search is a
 * memchr, and a log has far fewer `_` than letters (docs/job-log.md#one-pass-parser).
 */
export function indexOfSection(b: Buffer, from: number): number {
  let i = b.indexOf(UNDERSCORE, Math.max(0, from) + SECTION_PREFIX.length - 1);
  while (i >= 0) {
    if (
      b[i - 1] === 0x6e && // n
      b[i - 2] === 0x6f && // o
      b[i - 3] === 0x69 && // i
      b[i - 4] === 0x74 && // t
      b[i - 5] === 0x63 && // c
      b[i - 6] === 0x65 && // e
      b[i - 7] === 0x73 // s
    ) {
      return i - 7;
    }
    i = b.indexOf(UNDERSCORE, i + 1);
  }
  return -1;
}

/** First index ≥ `from` in b[from, end) where `section_` or a prefix of it running to `end` starts, or -1. */
export function candidateStart(b: Buffer, from: number, end: number): number {
  const full = indexOfSection(b, from);
  if (full >= 0 && full + SECTION_PREFIX.length <= end) return full;
  return prefixAtEnd(b, from, end);
}
