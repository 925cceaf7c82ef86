// How the demo's runner uploads a job log: one PATCH per section end, each
// sent when the clock reaches the time stamped on that section's end marker.
// A real runner PATCHes every few seconds whatever the log holds; cutting at
// section ends instead makes each stage reach the proxy the moment it ends,
// so the demo shows telemetry flowing stage by stage, in real time.
//
// Pure: reads the FF_TIMESTAMPS stamps the log builder wrote
// (docs/runner-protocol.md#timestamps: `YYYY-MM-DDTHH:MM:SS.ffffffZ SSt+`
// before every entry).

export interface ReplayChunk {
  /** Length of this PATCH body. */
  bytes: number;
  /** Epoch ns at which to send it: the stamp of its last stamped line. */
  atNs: bigint;
}

const STAMP = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.(\d{6})Z /;
const SECTION_END = Buffer.from('section_end:');

/** Epoch ns of a stamped log line, or undefined for an unstamped one. */
export function lineStampNs(line: string): bigint | undefined {
  const m = STAMP.exec(line);
  if (!m) return undefined;
  const seconds = Date.parse(`${m[1]}Z`);
  if (Number.isNaN(seconds)) return undefined;
  return BigInt(seconds) * 1_000_000n + BigInt(m[2]!) * 1000n;
}

/**
 * Cuts `log` after every line holding a `section_end:` marker. Chunks cover
 * the log exactly, in order; a log without stamps yields chunks timed at
 * `fallbackNs` (sent at once).
 */
export function replayChunks(log: Buffer, fallbackNs = 0n): ReplayChunk[] {
  const chunks: ReplayChunk[] = [];
  let chunkStart = 0;
  let lineStart = 0;
  let lastStamp = fallbackNs;
  while (lineStart < log.length) {
    const nl = log.indexOf(0x0a, lineStart);
    const lineEnd = nl < 0 ? log.length : nl + 1;
    const line = log.subarray(lineStart, lineEnd);
    lastStamp = lineStampNs(line.subarray(0, 32).toString('latin1')) ?? lastStamp;
    if (line.includes(SECTION_END)) {
      chunks.push({ bytes: lineEnd - chunkStart, atNs: lastStamp });
      chunkStart = lineEnd;
    }
    lineStart = lineEnd;
  }
  if (chunkStart < log.length) chunks.push({ bytes: log.length - chunkStart, atNs: lastStamp });
  return chunks;
}
