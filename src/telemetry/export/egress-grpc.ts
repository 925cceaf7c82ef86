// The payload endpoint policy for OTLP/gRPC channels (docs/security.md#payload-endpoints).
import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { EgressRefusedError, reportEgressRefusal, resolveAllowed, type EgressVerdict, type Resolve } from './egress-policy.js';

const normalHost = (host: string): string =>
  host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');

// grpc-js dials exactly the addresses its resolver reports, and asks the
// resolver again before reconnecting, so filtering there is filtering at
// connect time. Channels opt in by their target's scheme and name their
// guard (the verdict) with a channel option. TLS still verifies the host
// name: the channel's default authority is the target's host:port.

export const EGRESS_SCHEME = 'gitlab-otel-egress';
export const EGRESS_GUARD_OPTION = 'gitlab-otel.egress_guard';

/**
 * The grpc-js target and channel option that make a channel dial only what
 * `verdict` allows. `resolve` replaces DNS (tests name hosts that resolve to
 * chosen addresses without touching the system resolver).
 */
export function guardedChannel(
  host: string,
  port: string | number,
  verdict: EgressVerdict,
  resolve?: Resolve,
): { target: string; options: Record<string, string> } {
  ensureResolver();
  const h = normalHost(host);
  return {
    target: `${EGRESS_SCHEME}:${isIP(h) === 6 ? `[${h}]` : h}:${port}`,
    options: { [EGRESS_GUARD_OPTION]: guardId(verdict, resolve) },
  };
}

const guards = new Map<string, EgressGuard>();
const resolverIds = new WeakMap<Resolve, number>();
let resolverSeq = 0;

interface EgressGuard {
  readonly verdict: EgressVerdict;
  readonly resolve?: Resolve;
}

function guardId(verdict: EgressVerdict, resolve?: Resolve): string {
  let r = 0;
  if (resolve) {
    r = resolverIds.get(resolve) ?? ++resolverSeq;
    resolverIds.set(resolve, r);
  }
  const id = `${JSON.stringify(verdict)}/${r}`;
  if (!guards.has(id)) guards.set(id, { verdict, ...(resolve ? { resolve } : {}) });
  return id;
}

let registered = false;

function ensureResolver(): void {
  if (registered) return;
  registered = true;
  class EgressResolver implements grpc.experimental.Resolver {
    private readonly hostPort: grpc.experimental.HostPort | null;
    private destroyed = false;
    private running = false;
    constructor(
      target: grpc.experimental.GrpcUri,
      private readonly listener: grpc.experimental.ResolverListener,
      private readonly options: grpc.ChannelOptions,
    ) {
      this.hostPort = grpc.experimental.splitHostPort(target.path);
    }
    static getDefaultAuthority(target: grpc.experimental.GrpcUri): string {
      return target.path;
    }
    updateResolution(): void {
      this.destroyed = false;
      if (this.running) return;
      this.running = true;
      const fail = (details: string): void => {
        this.listener({ ok: false, error: { code: grpc.status.UNAVAILABLE, details, metadata: new grpc.Metadata() } }, {}, null, details);
      };
      const guard = guards.get(String(this.options[EGRESS_GUARD_OPTION]));
      const hp = this.hostPort;
      // Never synchronously with updateResolution (the Resolver contract).
      setImmediate(() => {
        if (!guard || !hp) {
          this.running = false;
          if (!this.destroyed) fail('egress guard missing');
          return;
        }
        resolveAllowed(hp.host, guard.verdict, guard.resolve).then(
          (addresses) => {
            this.running = false;
            if (this.destroyed) return;
            const port = hp.port ?? 443;
            this.listener({ ok: true, value: addresses.map((a) => ({ addresses: [{ host: a.address, port }] })) }, {}, null, '');
          },
          (err: Error) => {
            this.running = false;
            if (err instanceof EgressRefusedError) reportEgressRefusal(err);
            if (!this.destroyed) fail(err.message);
          },
        );
      });
    }
    destroy(): void {
      this.destroyed = true;
    }
  }
  grpc.experimental.registerResolver(EGRESS_SCHEME, EgressResolver);
}
