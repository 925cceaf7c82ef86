// V8's young generation as the proxy runs (docs/performance.md#garbage-collection).
//
// With Node's default semi-spaces (16 MiB each, a 32 MiB new space once V8
// has grown it), a proxy under load whose live heap is small (~15 MB) was
// seen running full mark-compacts back to back, each pausing every exchange
// in flight for 3–26 ms; with 8 MiB semi-spaces, none after start-up. The
// bound can only be given on node's command line or in NODE_OPTIONS (V8 sizes
// the heap when the isolate starts; v8.setFlagsFromString later does not
// resize it), so the shipped systemd unit and image set it, and a proxy
// started without it says so once. Pure: the caller passes argv and env.

/** What the shipped systemd unit and container image put in NODE_OPTIONS. */
export const SHIPPED_NODE_OPTIONS = '--max-semi-space-size=8';

const FLAG = /^--max[-_]semi[-_]space[-_]size(?:=(.*))?$/;

/**
 * The semi-space bound in MiB that node was started with, from its own
 * arguments (`process.execArgv`) and NODE_OPTIONS, the later one winning as
 * in V8; undefined when none was given or the value is not a whole number.
 */
export function semiSpaceBoundMiB(execArgv: readonly string[], nodeOptions: string | undefined): number | undefined {
  let bound: number | undefined;
  const read = (args: readonly string[]): void => {
    for (let i = 0; i < args.length; i++) {
      const m = FLAG.exec(args[i]!);
      if (!m) continue;
      const raw = m[1] ?? args[++i];
      bound = raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : undefined;
    }
  };
  // NODE_OPTIONS is applied before the command line's own flags.
  read((nodeOptions ?? '').split(/\s+/).filter((a) => a !== ''));
  read(execArgv);
  return bound;
}
