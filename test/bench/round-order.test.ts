// The metrics bench's round orders (bench/round-order.ts, docs/metrics.md#cost):
// a balanced Latin square, so no side always meets the same neighbour or the
// same moment of a round.
import t, { type Test } from 'tap';
import { balancedOrders } from '../../bench/round-order.js';

function check(t: Test, sides: string[], rows: number): void {
  const orders = balancedOrders(sides);
  t.equal(orders.length, rows, `${rows} rows`);
  for (const row of orders) t.same([...row].sort(), [...sides].sort(), `${row.join(' ')} holds every side once`);
  const n = sides.length;
  for (let pos = 0; pos < n; pos++) {
    for (const s of sides) {
      t.equal(orders.filter((row) => row[pos] === s).length, rows / n, `${s} at position ${pos} ${rows / n} times`);
    }
  }
  const follows = new Map<string, number>();
  for (const row of orders)
    for (let i = 1; i < n; i++) follows.set(`${row[i - 1]}>${row[i]}`, (follows.get(`${row[i - 1]}>${row[i]}`) ?? 0) + 1);
  t.equal(follows.size, n * (n - 1), 'every ordered pair of neighbours occurs');
  t.same(new Set(follows.values()), new Set([rows / n]), `each ${rows / n} times`);
}

t.test('four sides: four rows, each side once in each position and once right after each other side', async (t) => {
  check(t, ['on', 'off', 'offB', 'worker'], 4);
});

t.test('three sides: the rows and their mirrors, all six permutations', async (t) => {
  check(t, ['on', 'off', 'offB'], 6);
  t.equal(new Set(balancedOrders(['a', 'b', 'c']).map((r) => r.join())).size, 6);
});

t.test('six sides: six rows, balanced the same way', async (t) => {
  check(t, ['a', 'b', 'c', 'd', 'e', 'f'], 6);
});
