import t from 'tap';
import { OTHER, ValueCap } from '../../../src/telemetry/metrics/value-cap.js';

t.test('the first max distinct values pass, later ones become other and are counted', async (t) => {
  let overflows = 0;
  const cap = new ValueCap(2, () => overflows++);
  t.same(
    ['a', 'b', 'a', 'c', 'b', 'd', 'c'].map((v) => cap.admit(v)),
    ['a', 'b', 'a', OTHER, 'b', OTHER, OTHER],
  );
  t.equal(overflows, 3, 'each substitution is counted');
  t.equal(cap.size, 2, 'memory stays at the cap');
});

t.test('a cap of zero reports everything as other; a bad cap is refused', async (t) => {
  const cap = new ValueCap(0);
  t.equal(cap.admit('x'), OTHER);
  t.throws(() => new ValueCap(-1), RangeError);
  t.throws(() => new ValueCap(1.5), RangeError);
});

t.test('countOverflow false: the same substitution, admitted and not counted (a zero series before the real count)', async (t) => {
  let overflows = 0;
  const cap = new ValueCap(1, () => overflows++);
  t.equal(cap.admit('a', false), 'a', 'room: admitted as when counted');
  t.equal(cap.admit('a'), 'a', 'and kept');
  t.equal(cap.admit('b', false), OTHER);
  t.equal(overflows, 0, 'not counted');
  t.equal(cap.admit('b'), OTHER);
  t.equal(overflows, 1, 'counted once, by the counting call');
});
