// Raw HTTP headers as Node hands them over (`IncomingMessage.rawHeaders`) and
// takes them back (`http.request` / `writeHead` accept the same flat array):
// [name, value, name, value, …], order, case and repeats kept. The proxy
// forwards headers in this form so that what GitLab and the runner see is what
// the other side sent, minus the hop-by-hop fields (docs/architecture.md). Pure.

/** Flat name/value pairs, as `IncomingMessage.rawHeaders`. */
export type RawHeaders = string[];

// RFC 9110 §7.6.1 hop-by-hop fields, plus the legacy ones proxies must not forward.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const NO_SKIP: ReadonlySet<string> = new Set();

/** Adds the field names a `Connection` header lists (they are hop-by-hop too, RFC 9110 §7.6.1). */
function addConnectionTokens(value: string, named: Set<string> | undefined): Set<string> {
  const tokens = named ?? new Set<string>();
  for (const t of value.split(',')) tokens.add(t.trim().toLowerCase());
  return tokens;
}

/** `pairs` without the fields a `Connection` header named (rare: the runner sends none). */
function withoutNamed(pairs: RawHeaders, named: ReadonlySet<string>): RawHeaders {
  const out: string[] = [];
  for (let i = 0; i < pairs.length; i += 2) if (!named.has(pairs[i]!.toLowerCase())) out.push(pairs[i]!, pairs[i + 1]!);
  return out;
}

/**
 * Raw header pairs minus hop-by-hop fields (and `skip`), keeping order, case and repeats. One pass, one
 * lower-casing per field: this runs twice per proxied call (docs/performance.md#forwarding-path).
 */
export function endToEnd(raw: RawHeaders, skip: ReadonlySet<string> = NO_SKIP): RawHeaders {
  let named: Set<string> | undefined;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'connection') named = addConnectionTokens(raw[i + 1]!, named);
    if (HOP_BY_HOP.has(name) || skip.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return named ? withoutNamed(out, named) : out;
}

/** A runner request's headers read in the same single pass that filters them. */
export interface RequestHeaders {
  /** End-to-end fields minus Host and X-Forwarded-For (the proxy sets both). */
  forward: RawHeaders;
  xForwardedFor?: string;
  jobToken?: string;
  contentRange?: string;
}

export function requestHeaders(raw: RawHeaders): RequestHeaders {
  let named: Set<string> | undefined;
  const h: RequestHeaders = { forward: [] };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    switch (name) {
      case 'host':
        continue;
      case 'x-forwarded-for':
        h.xForwardedFor ??= value;
        continue;
      case 'connection':
        named = addConnectionTokens(value, named);
        continue;
      case 'job-token':
        h.jobToken ??= value;
        break;
      case 'content-range':
        h.contentRange ??= value;
        break;
      default:
        if (HOP_BY_HOP.has(name)) continue;
    }
    h.forward.push(raw[i]!, value);
  }
  if (named) h.forward = withoutNamed(h.forward, named);
  return h;
}

export const LENGTH_SKIP = new Set(['content-length']);

/** The first value of `name` (lower case), if present. */
export function header(raw: RawHeaders, name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1];
  return undefined;
}
