// Bounded attribute values: the first `max` distinct values of an opt-in
// attribute (a project path, a pipeline name) keep their own series; every
// later value is reported as `other`, and each such substitution is counted.
// That keeps a metric's series count bounded by construction, whatever the
// jobs send (docs/metrics.md#cardinality). Pure: no I/O, no clock.

export const OTHER = 'other';

export class ValueCap {
  private readonly seen = new Set<string>();

  constructor(
    readonly max: number,
    private readonly onOverflow: () => void = () => undefined,
  ) {
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`ValueCap max must be a whole number >= 0, got ${max}`);
  }

  /**
   * The value to report for `value`: itself while there is room, `other` once the cap is reached. `countOverflow`
   * false: a substitution the caller will make again for the same measurement is not counted twice.
   */
  admit(value: string, countOverflow = true): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size < this.max) {
      this.seen.add(value);
      return value;
    }
    if (countOverflow) this.onOverflow();
    return OTHER;
  }

  get size(): number {
    return this.seen.size;
  }
}
