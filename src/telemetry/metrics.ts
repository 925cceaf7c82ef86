// The process's own metrics, exposed as Prometheus text on the admin listener.
// One registry per process component (not prom-client's global one) so tests
// can run several proxies in one process without metric name clashes.
import { Registry } from 'prom-client';

export function createRegistry(): Registry {
  return new Registry();
}

export type { Registry };
