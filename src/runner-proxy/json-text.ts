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

/** Returns the index just past the JSON value starting at `i`. */
function skipValue(text: string, i: number): number {
  i = skipWs(text, i);
  const c = text[i];
  if (c === '"') return skipString(text, i);
  if (c === '{' || c === '[') {
    const close = c === '{' ? '}' : ']';
    i = skipWs(text, i + 1);
    if (text[i] === close) return i + 1;
    for (;;) {
      if (c === '{') {
        if (text[i] !== '"') throw new JsonTextError('expected a key');
        i = skipWs(text, skipString(text, i));
        if (text[i] !== ':') throw new JsonTextError('expected a colon');
        i++;
      }
      i = skipWs(text, skipValue(text, i));
      if (text[i] === ',') {
        i = skipWs(text, i + 1);
        continue;
      }
      if (text[i] === close) return i + 1;
      throw new JsonTextError(`expected ',' or '${close}'`);
    }
  }
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

/** The members of the object whose `{` is at `start`, in text order. */
function members(text: string, start: number): { key: string; member: MemberSpan }[] {
  const out: { key: string; member: MemberSpan }[] = [];
  let i = skipWs(text, start + 1);
  if (text[i] === '}') return out;
  for (;;) {
    const keyStart = i;
    const keyEnd = skipString(text, i);
    const key = JSON.parse(text.slice(keyStart, keyEnd)) as string;
    i = skipWs(text, keyEnd) + 1; // past ':'
    const valueStart = skipWs(text, i);
    const valueEnd = skipValue(text, valueStart);
    out.push({ key, member: { keyStart, start: valueStart, end: valueEnd } });
    i = skipWs(text, valueEnd);
    if (text[i] === '}') return out;
    i = skipWs(text, i + 1);
  }
}

/**
 * Finds the value at `path` (object keys only). With duplicate keys the last
 * one wins, as in Go's encoding/json and JSON.parse. Returns undefined when the
 * path does not exist or crosses a non-object.
 */
export function locate(text: string, path: readonly string[]): MemberSpan | undefined {
  let objStart = skipWs(text, 0);
  let found: MemberSpan | undefined;
  for (const key of path) {
    if (text[objStart] !== '{') return undefined;
    found = undefined;
    for (const m of members(text, objStart)) if (m.key === key) found = m.member;
    if (!found) return undefined;
    objStart = found.start;
  }
  return found;
}

/** Text with `member` (key, value and one adjacent comma) removed from its object. */
export function removeMember(text: string, member: MemberSpan): string {
  let after = skipWs(text, member.end);
  if (text[after] === ',') {
    after = skipWs(text, after + 1);
    return text.slice(0, member.keyStart) + text.slice(after);
  }
  // Last member: remove the comma before it, if any.
  let before = member.keyStart - 1;
  while (before >= 0 && /\s/.test(text[before]!)) before--;
  if (text[before] === ',') return text.slice(0, before) + text.slice(member.end);
  return text.slice(0, member.keyStart) + text.slice(member.end);
}

/** Inserts raw member text (`"k":v`) as the first member of the object whose `{` is at `objStart`. */
export function insertFirstMember(text: string, objStart: number, memberText: string): string {
  const inner = skipWs(text, objStart + 1);
  const sep = text[inner] === '}' ? '' : ',';
  return `${text.slice(0, objStart + 1)}${memberText}${sep}${text.slice(objStart + 1)}`;
}

/** Appends raw element text to the array whose `[` is at `arrStart`. */
export function appendElement(text: string, arrStart: number, elementText: string): string {
  const end = skipValue(text, arrStart); // just past ']'
  const inner = skipWs(text, arrStart + 1);
  const sep = text[inner] === ']' ? '' : ',';
  return `${text.slice(0, end - 1)}${sep}${elementText}${text.slice(end - 1)}`;
}
