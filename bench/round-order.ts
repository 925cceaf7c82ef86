// The order of the sides within a bench round (docs/metrics.md#cost). Its own module so
// its test loads it without the metrics bench itself.

/**
 * The orders of the sides within a round: a balanced Latin square (Williams design). With an even number of
 * sides, n rows in which every side is in every position once and right after every other side once; with an odd
 * number, those n rows and their mirrors (for three sides: all six permutations). So across a whole cycle of rounds
 * no side always follows the same neighbour or always meets a round's first (or last) moments.
 */
export function balancedOrders<T>(sides: readonly T[]): T[][] {
  const n = sides.length;
  // The first row 0, 1, n-1, 2, n-2, …; row r adds r to each (mod n).
  const first = [0];
  for (let k = 1; first.length < n; k++) {
    first.push(k);
    if (first.length < n) first.push(n - k);
  }
  const rows = first.map((_, r) => first.map((c) => sides[(c + r) % n]!));
  return n % 2 === 0 ? rows : [...rows, ...rows.map((row) => [...row].reverse())];
}
