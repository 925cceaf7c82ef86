// The contract between `bench/run.ts` and each benchmark module.
export interface BenchFigure {
  /** The issue this figure was asked for, e.g. 'runner-proxy'. */
  suite: string;
  /** What was measured, e.g. 'job request p99 latency'. */
  name: string;
  value: number;
  unit: string;
  /** The same measurement without our code in the way (direct, or a naive baseline), taken in the same run. */
  baseline?: number;
  /** value / baseline (or the ratio the target is stated in). */
  ratio?: number;
  /** The target as the issue states it, e.g. '≤ 1.05×' or '≥ 400 MB/s'. */
  target?: string;
  /** Whether the target was met; undefined when there is no target. */
  met?: boolean;
  note?: string;
}

export interface BenchOptions {
  /** A smoke run: small sizes, few iterations. */
  quick: boolean;
  /** Progress lines (stderr only). */
  log: (line: string) => void;
  /**
   * How the figures were measured (rounds, warm-up excluded, best-of-N, settings that
   * differ from the defaults): printed under the table and kept in the results file.
   */
  method?: (line: string) => void;
  /** Adds to the machine description in the results file, e.g. ('nginx', '1.22.1'). */
  machine?: (key: string, value: string) => void;
}

export type BenchModule = (options: BenchOptions) => Promise<BenchFigure[]>;
