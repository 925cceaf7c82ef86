// Durations as people read them in a waterfall: three significant digits in
// the largest unit that keeps the number below 1000 (ns, µs, ms, s), then
// minutes and hours with their remainder.

const UNITS: readonly [bigint, string][] = [
  [1n, 'ns'],
  [1_000n, 'µs'],
  [1_000_000n, 'ms'],
  [1_000_000_000n, 's'],
];
const MINUTE = 60_000_000_000n;
const HOUR = 60n * MINUTE;

function threeDigits(value: number): string {
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0);
}

export function formatDuration(ns: bigint): string {
  if (ns < 0n) ns = 0n;
  if (ns < 1_000n) return `${ns}ns`;
  if (ns < MINUTE) {
    for (let i = 1; i < UNITS.length; i++) {
      const [size, unit] = UNITS[i]!;
      const text = threeDigits(Number(ns) / Number(size));
      // 999.7 µs rounds to "1000"; the next unit says it in fewer digits.
      if (Number(text) < 1000 || i === UNITS.length - 1) {
        if (unit === 's' && Number(text) >= 60) break;
        return `${text}${unit}`;
      }
    }
  }
  if (ns < HOUR) {
    // Round to whole seconds first so 59.6 s past a minute never prints "60s".
    const seconds = (ns + 500_000_000n) / 1_000_000_000n;
    if (seconds < 3600n) return `${seconds / 60n}m ${String(seconds % 60n).padStart(2, '0')}s`;
  }
  const minutes = (ns + 30_000_000_000n) / MINUTE;
  return `${minutes / 60n}h ${String(minutes % 60n).padStart(2, '0')}m`;
}
