// Locating values inside raw JSON text, so that payload edits change exactly
// the bytes they mean to and nothing else. Re-serialising a parsed payload
// would silently rewrite number formats, escapes and key order, and would
// round int64 values above 2^53; the runner's Go decoder is strict about
// types, so the proxy edits text in place instead.

export interface TextSpan {
  /** Index of the value's first character. */
  start: number;
  /** Index just past the value's last character. */
  end: number;
}

export interface MemberSpan extends TextSpan {
  /** Index of the member's key (its opening quote). */
  keyStart: number;
}

class JsonTextError extends Error {}

function skipWs(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

function skipString(text: string, i: number): number {
  // text[i] is the opening quote
  i++;
  for (;;) {
    const q = text.indexOf('"', i);
    if (q < 0) throw new JsonTextError('unterminated string');
    let backslashes = 0;
    for (let j = q - 1; j >= i && text.charCodeAt(j) === 0x5c; j--) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    i = q + 1;
  }
}

const QUOTE = 0x22;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * Skips an object or array by counting brackets outside strings. Structure
 * inside it is not validated: the payload was parsed with JSON.parse before
 * any edit, so only the boundaries matter here, and this runs on the
 * forwarding path over payloads of up to hundreds of KiB (a plain charCode
 * loop; strings are jumped over with indexOf).
 */
function skipContainer(text: string, i: number): number {
  let depth = 0;
  const n = text.length;
  for (let j = i; j < n; j++) {
    const c = text.charCodeAt(j);
    if (c === QUOTE) {
      j = skipString(text, j) - 1;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
    } else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) {
      return j + 1;
    }
  }
  throw new JsonTextError('unterminated object or array');
}

/** Returns the index just past the JSON value starting at `i`. */
function skipValue(text: string, i: number): number {
  i = skipWs(text, i);
  const c = text.charCodeAt(i);
  if (c === QUOTE) return skipString(text, i);
  if (c === OPEN_BRACE || c === OPEN_BRACKET) return skipContainer(text, i);
  for (const literal of LITERALS) if (text.startsWith(literal, i)) return i + literal.length;
  // A number: scan its characters rather than slicing the text for a regex
  // (payloads hold hundreds of numbers, and this runs on the forwarding path).
  let j = i;
  while (j < text.length && NUMBER_CHARS.has(text.charCodeAt(j))) j++;
  if (j === i) throw new JsonTextError(`unexpected character at ${i}`);
  return j;
}

const LITERALS = ['true', 'false', 'null'];
const NUMBER_CHARS = new Set([...'0123456789+-.eE'].map((c) => c.charCodeAt(0)));

/** The first non-blank index: where the document's root value starts. */
export function rootStart(text: string): number {
  return skipWs(text, 0);
}

/**
 * The members of the object whose `{` is at `start`, by key. With duplicate
 * keys the last one wins, as in Go's encoding/json and JSON.parse.
 */
export function objectMembers(text: string, start: number): Map<string, MemberSpan> {
  const out = new Map<string, MemberSpan>();
  let i = skipWs(text, start + 1);
  if (text[i] === '}') return out;
  for (;;) {
    const keyStart = i;
    const keyEnd = skipString(text, i);
    const key = JSON.parse(text.slice(keyStart, keyEnd)) as string;
    i = skipWs(text, keyEnd) + 1; // past ':'
    const valueStart = skipWs(text, i);
    const valueEnd = skipValue(text, valueStart);
    out.set(key, { keyStart, start: valueStart, end: valueEnd });
    i = skipWs(text, valueEnd);
    if (text[i] === '}') return out;
    i = skipWs(text, i + 1);
  }
}

/** The elements of the array whose `[` is at `start`, in order. */
export function arrayElements(text: string, start: number): TextSpan[] {
  const out: TextSpan[] = [];
  let i = skipWs(text, start + 1);
  if (text[i] === ']') return out;
  for (;;) {
    const end = skipValue(text, i);
    out.push({ start: i, end });
    i = skipWs(text, end);
    if (text[i] === ']') return out;
    i = skipWs(text, i + 1);
  }
}

/** Finds the value at `path` (object keys only); undefined when the path does not exist or crosses a non-object. */
export function locate(text: string, path: readonly string[]): MemberSpan | undefined {
  let objStart = rootStart(text);
  let found: MemberSpan | undefined;
  for (const key of path) {
    if (text[objStart] !== '{') return undefined;
    found = objectMembers(text, objStart).get(key);
    if (!found) return undefined;
    objStart = found.start;
  }
  return found;
}

/** A replacement of `[from, to)` by `insert`. */
export interface TextEdit {
  from: number;
  to: number;
  insert: string;
}

/** Applies edits that do not overlap, in one pass over the text. */
export function applyEdits(text: string, edits: readonly TextEdit[]): string {
  const parts: string[] = [];
  let at = 0;
  for (const e of [...edits].sort((a, b) => a.from - b.from)) {
    parts.push(text.slice(at, e.from), e.insert);
    at = e.to;
  }
  parts.push(text.slice(at));
  return parts.join('');
}

/** Removes `member` (key, value and one adjacent comma) from its object. */
export function removal(text: string, member: MemberSpan): TextEdit {
  const after = skipWs(text, member.end);
  if (text[after] === ',') return { from: member.keyStart, to: skipWs(text, after + 1), insert: '' };
  // Last member: remove the comma before it, if any.
  let before = member.keyStart - 1;
  while (before >= 0 && /\s/.test(text[before]!)) before--;
  if (text[before] === ',') return { from: before, to: member.end, insert: '' };
  return { from: member.keyStart, to: member.end, insert: '' };
}

/** Appends raw element text to the array spanning `array` (`[` at start, `]` just before end). */
export function append(text: string, array: TextSpan, elementText: string): TextEdit {
  const empty = text[skipWs(text, array.start + 1)] === ']';
  return { from: array.end - 1, to: array.end - 1, insert: `${empty ? '' : ','}${elementText}` };
}

/** Inserts raw member text (`"k":v`) as the first member of the object whose `{` is at `objStart`. */
export function insertFirstMember(text: string, objStart: number, memberText: string): string {
  const inner = skipWs(text, objStart + 1);
  const sep = text[inner] === '}' ? '' : ',';
  return `${text.slice(0, objStart + 1)}${memberText}${sep}${text.slice(objStart + 1)}`;
}
