// Static gRPC metadata: OTEL_EXPORTER_OTLP_HEADERS (and the traces-specific
// variable), in the W3C-baggage-like `k=v,k2=v2` form the OpenTelemetry
// exporter spec defines, values percent-decoded.

export interface ParsedHeaders {
  readonly headers: Record<string, string>;
  /** Entries that were skipped, by position (never their values: they are often secrets). */
  readonly invalid: number[];
}

// gRPC metadata keys: lowercase token characters; `-bin` keys carry binary and
// cannot come from a text variable.
const KEY = /^[0-9a-z_.-]+$/;

export function parseOtlpHeaders(value: string | undefined): ParsedHeaders {
  const headers: Record<string, string> = {};
  const invalid: number[] = [];
  if (!value) return { headers, invalid };
  value.split(',').forEach((entry, index) => {
    if (entry.trim() === '') return;
    const eq = entry.indexOf('=');
    if (eq <= 0) {
      invalid.push(index);
      return;
    }
    const key = entry.slice(0, eq).trim().toLowerCase();
    let decoded: string;
    try {
      decoded = decodeURIComponent(entry.slice(eq + 1).trim());
    } catch {
      invalid.push(index);
      return;
    }
    if (!KEY.test(key) || key.endsWith('-bin') || key.startsWith('grpc-')) {
      invalid.push(index);
      return;
    }
    headers[key] = decoded;
  });
  return { headers, invalid };
}

/** The headers an SDK would send: the traces-specific variable wins per key over the generic one. */
export function otlpHeadersFromEnv(env: Readonly<Record<string, string | undefined>>): ParsedHeaders {
  const generic = parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_HEADERS);
  const traces = parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS);
  return { headers: { ...generic.headers, ...traces.headers }, invalid: [...generic.invalid, ...traces.invalid] };
}
