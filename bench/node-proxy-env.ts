// How the bench starts a Node proxy process (bench/proxy.ts, bench/metrics.ts).
import { SHIPPED_NODE_OPTIONS } from '../src/runner-proxy/young-generation.js';

/**
 * The environment of every Node proxy the bench starts, ours and the bare pipes alike: no
 * OTEL_* of the bench's own, and NODE_OPTIONS as the shipped systemd unit and
 * image set it (docs/performance.md#garbage-collection), so ours runs as
 * deployed and the pipes are the same Node. BENCH_OURS_NODE_ARGS go on ours'
 * command line, which V8 reads after NODE_OPTIONS.
 */
export function nodeProxyEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
  env.NODE_OPTIONS = [process.env.NODE_OPTIONS, SHIPPED_NODE_OPTIONS].filter((o) => o !== undefined && o !== '').join(' ');
  return env;
}
