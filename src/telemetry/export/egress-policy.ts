// Where the proxy may connect on a job payload's say-so. GitLab names OTLP
// endpoints in each job payload (features.tracing.otel_endpoints); the proxy
// follows them as the runner does, but the proxy may hold credentials and
// network reach no job has, so a payload must not steer it at the cloud
// metadata service, a node-local port or an internal database
// (docs/security.md#payload-endpoints). Three parts:
//   - classifyAddress: pure, what kind of address an IP literal is;
//   - decidePayloadEndpoint: pure, the static verdict on a host, port,
//     transport and audience before anything is resolved;
//   - egressLookup (here, for net/http agents) and the grpc-js resolver
//     (egress-grpc.ts): the same verdict applied to every address a name
//     resolves to, at connect time, so the address dialled is the address
//     checked (a name that resolves to 169.254.169.254 counts).
import { BlockList, isIP } from 'node:net';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';

export type AddressClass = 'public' | 'loopback' | 'link_local' | 'private' | 'metadata' | 'unspecified' | 'reserved';

function blocks(entries: [string, number, 'ipv4' | 'ipv6'][]): BlockList {
  const list = new BlockList();
  for (const [net, prefix, type] of entries) list.addSubnet(net, prefix, type);
  return list;
}

// Instance metadata services: GCP/AWS/Azure/OpenStack (169.254.169.254), AWS
// ECS task metadata (169.254.170.2), AWS IMDS over IPv6 (fd00:ec2::254),
// Alibaba Cloud (100.100.100.200), Oracle Cloud (192.0.0.192).
const METADATA = blocks([
  ['169.254.169.254', 32, 'ipv4'],
  ['169.254.170.2', 32, 'ipv4'],
  ['100.100.100.200', 32, 'ipv4'],
  ['192.0.0.192', 32, 'ipv4'],
  ['fd00:ec2::254', 128, 'ipv6'],
]);
const LOOPBACK = blocks([
  ['127.0.0.0', 8, 'ipv4'],
  ['::1', 128, 'ipv6'],
]);
const UNSPECIFIED = blocks([
  ['0.0.0.0', 8, 'ipv4'],
  ['::', 128, 'ipv6'],
]);
const LINK_LOCAL = blocks([
  ['169.254.0.0', 16, 'ipv4'],
  ['fe80::', 10, 'ipv6'],
]);
// RFC 1918, RFC 6598 shared address space (carrier-grade NAT, also used for
// Kubernetes pod networks), RFC 4193 unique local IPv6, RFC 2544 benchmarking.
const PRIVATE = blocks([
  ['10.0.0.0', 8, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'],
  ['fc00::', 7, 'ipv6'],
]);
// Multicast, the IPv4 "future use" block and broadcast, IETF protocol
// assignments, IPv6 multicast and site-local: never a collector.
const RESERVED = blocks([
  ['224.0.0.0', 4, 'ipv4'],
  ['240.0.0.0', 4, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'],
  ['ff00::', 8, 'ipv6'],
  ['fec0::', 10, 'ipv6'],
]);

/** Host names that are metadata services whatever they resolve to. */
const METADATA_NAMES = new Set(['metadata.google.internal', 'metadata', 'instance-data', 'instance-data.ec2.internal']);

/** The IPv4 address embedded in an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) IPv6 address. */
function embeddedIpv4(ip: string): string | undefined {
  const m = /^(?:::ffff:|64:ff9b::)(?:0:)?(.+)$/i.exec(ip);
  if (!m) return undefined;
  const tail = m[1]!;
  if (isIP(tail) === 4) return tail;
  const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(tail);
  if (!hex) return undefined;
  const hi = parseInt(hex[1]!, 16);
  const lo = parseInt(hex[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** What kind of address an IP literal is; undefined when `ip` is not one. Brackets and a zone id are ignored. */
export function classifyAddress(ip: string): AddressClass | undefined {
  let a = ip.trim().replace(/^\[|\]$/g, '');
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  const family = isIP(a);
  if (family === 0) return undefined;
  if (family === 6) {
    const v4 = embeddedIpv4(a);
    if (v4) return classifyAddress(v4);
  }
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (METADATA.check(a, type)) return 'metadata';
  if (LOOPBACK.check(a, type)) return 'loopback';
  if (UNSPECIFIED.check(a, type)) return 'unspecified';
  if (LINK_LOCAL.check(a, type)) return 'link_local';
  if (PRIVATE.check(a, type)) return 'private';
  if (RESERVED.check(a, type)) return 'reserved';
  return 'public';
}

/**
 * The one loopback test for credentials in clear (docs/security.md#plaintext-credentials):
 * `localhost`, or an IP literal in 127.0.0.0/8 or ::1. Names such as
 * `127.evil.example` or `localhost.example.com` are not loopback.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '');
  if (h === 'localhost') return true;
  return classifyAddress(h) === 'loopback';
}

/** `host:port` from `telemetry.payload_endpoints.allowed_hosts`; `*.example.com` matches any subdomain. */
export interface HostPattern {
  readonly host: string;
  /** undefined: any port. */
  readonly port?: number;
}

export interface EgressPolicy {
  /** When set, only hosts matching a pattern are allowed. */
  readonly allowedHosts?: readonly HostPattern[];
  /** When set, only these GCP ID-token audiences are requested. */
  readonly allowedAudiences?: readonly string[];
}

export type EgressRefusal =
  | 'host_not_allowed'
  | 'audience_not_allowed'
  | 'plaintext_token'
  | 'loopback'
  | 'link_local'
  | 'private'
  | 'metadata'
  | 'unspecified'
  | 'reserved';

export type EgressVerdict =
  /** `explicit`: an allowed_hosts entry names this host exactly, so its addresses are not checked. */
  { readonly allowed: true; readonly explicit: boolean } | { readonly allowed: false; readonly reason: EgressRefusal };

/** Parses `HOST:PORT`, `HOST:*`, `[v6]:PORT` or `*.domain:PORT`; undefined when malformed. */
export function parseHostPattern(text: string): HostPattern | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\*\.[A-Za-z0-9.-]+|[A-Za-z0-9.-]+)):(\d{1,5}|\*)$/.exec(text.trim());
  if (!m) return undefined;
  const host = (m[1] ?? m[2]!).toLowerCase();
  if (m[3] === '*') return { host };
  const port = Number(m[3]);
  return port >= 1 && port <= 65535 ? { host, port } : undefined;
}

function matches(pattern: HostPattern, host: string, port: number): 'exact' | 'wildcard' | undefined {
  if (pattern.port !== undefined && pattern.port !== port) return undefined;
  if (pattern.host === host) return 'exact';
  if (pattern.host.startsWith('*.') && host.endsWith(pattern.host.slice(1)) && host.length > pattern.host.length - 1) return 'wildcard';
  return undefined;
}

function normalHost(host: string): string {
  return host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
}

/**
 * The verdict on a payload endpoint before any name is resolved. Pure.
 * `audience` is set when the endpoint asks the proxy for a GCP ID token.
 */
export function decidePayloadEndpoint(
  policy: EgressPolicy,
  target: { host: string; port: number; tls: boolean; audience?: string },
): EgressVerdict {
  const host = normalHost(target.host);
  if (target.audience !== undefined) {
    // A workload identity token is a credential of the proxy's service account: never in clear, whatever the host.
    if (!target.tls) return { allowed: false, reason: 'plaintext_token' };
    if (policy.allowedAudiences && !policy.allowedAudiences.includes(target.audience))
      return { allowed: false, reason: 'audience_not_allowed' };
  }
  let explicit = false;
  if (policy.allowedHosts) {
    const hit = policy.allowedHosts.map((p) => matches(p, host, target.port)).find((m) => m !== undefined);
    if (!hit) return { allowed: false, reason: 'host_not_allowed' };
    explicit = hit === 'exact';
  }
  if (explicit) return { allowed: true, explicit };
  if (METADATA_NAMES.has(host)) return { allowed: false, reason: 'metadata' };
  if (host === 'localhost' || host.endsWith('.localhost')) return { allowed: false, reason: 'loopback' };
  const cls = classifyAddress(host);
  if (cls !== undefined && cls !== 'public') return { allowed: false, reason: cls };
  return { allowed: true, explicit: false };
}

export class EgressRefusedError extends Error {
  readonly code = 'EGRESS_REFUSED';
  constructor(
    readonly host: string,
    readonly reason: EgressRefusal,
  ) {
    super(`connection to ${host} refused by the payload endpoint policy (${reason})`);
    this.name = 'EgressRefusedError';
  }
}

export type Resolve = (host: string) => Promise<LookupAddress[]>;

const systemResolve: Resolve = (host) =>
  new Promise((resolve, reject) =>
    dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
  );

/**
 * Resolves `host` and keeps only the addresses the policy allows. A name that
 * resolves to nothing allowed is refused with the class of its first address.
 */
export async function resolveAllowed(host: string, verdict: EgressVerdict, resolve: Resolve = systemResolve): Promise<LookupAddress[]> {
  if (!verdict.allowed) throw new EgressRefusedError(host, verdict.reason);
  const h = normalHost(host);
  const literal = isIP(h);
  const addresses = literal ? [{ address: h, family: literal }] : await resolve(h);
  if (verdict.explicit) return addresses;
  const allowed = addresses.filter((a) => classifyAddress(a.address) === 'public');
  if (allowed.length === 0) {
    const cls = addresses.length > 0 ? classifyAddress(addresses[0]!.address) : undefined;
    throw new EgressRefusedError(host, cls && cls !== 'public' ? cls : 'reserved');
  }
  return allowed;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net/http/https agents: every connection the agent opens goes
 * through the policy with the address it is about to dial.
 */
export function egressLookup(
  verdict: EgressVerdict,
  resolve: Resolve = systemResolve,
  onRefused?: (err: EgressRefusedError) => void,
): (host: string, options: { all?: boolean }, callback: LookupCallback) => void {
  return (host, options, callback) => {
    resolveAllowed(host, verdict, resolve).then(
      (addresses) => (options.all ? callback(null, addresses) : callback(null, addresses[0]!.address, addresses[0]!.family)),
      (err: Error) => {
        if (err instanceof EgressRefusedError) {
          onRefused?.(err);
          reportEgressRefusal(err);
        }
        callback(err, '');
      },
    );
  };
}

type RefusalListener = (err: EgressRefusedError) => void;
const listeners = new Set<RefusalListener>();

/** Hears every connect-time refusal (to log and count it); returns the unsubscribe function. */
export function onEgressRefused(listener: RefusalListener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Tells every listener about a refusal. */
export function reportEgressRefusal(err: EgressRefusedError): void {
  for (const l of listeners) {
    try {
      l(err);
    } catch {
      // A listener's failure must not reach a connection attempt.
    }
  }
}
