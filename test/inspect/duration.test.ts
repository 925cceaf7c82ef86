// Durations as a waterfall prints them (src/inspect/duration.ts): three
// significant digits up to seconds, then minutes and hours. Pure.
import t from 'tap';
import { formatDuration } from '../../src/inspect/duration.js';

t.test('durations read sensibly from ns to hours', async (t) => {
  const cases: [bigint, string][] = [
    [-5n, '0ns'],
    [0n, '0ns'],
    [999n, '999ns'],
    [1_000n, '1.00µs'],
    [12_345n, '12.3µs'],
    [999_499n, '999µs'],
    [999_700n, '1.00ms'],
    [123_456_789n, '123ms'],
    [999_999_999n, '1.00s'],
    [59_400_000_000n, '59.4s'],
    [59_990_000_000n, '1m 00s'],
    [65_400_000_000n, '1m 05s'],
    [3_599_600_000_000n, '1h 00m'],
    [7_380_000_000_000n, '2h 03m'],
  ];
  for (const [ns, text] of cases) t.equal(formatDuration(ns), text, String(ns));
});
