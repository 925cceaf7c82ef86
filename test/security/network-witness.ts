// Preloaded into a CLI child (`--import`): reports every name lookup and every
// outgoing TCP connection on stderr as `NETWORK-WITNESS <kind> <target>`, so a
// test can prove a process refused its configuration before touching the
// network. Node's own modules are wrapped; nothing of ours is replaced.
import dns from 'node:dns';
import net from 'node:net';
import { syncBuiltinESMExports } from 'node:module';

const report = (kind: string, target: unknown): void => {
  process.stderr.write(`NETWORK-WITNESS ${kind} ${String(target)}\n`);
};

const lookup = dns.lookup;
(dns as { lookup: unknown }).lookup = function (host: string, ...rest: unknown[]) {
  report('lookup', host);
  return (lookup as (...a: unknown[]) => unknown).call(dns, host, ...rest);
};
const promisesLookup = dns.promises.lookup;
(dns.promises as { lookup: unknown }).lookup = function (host: string, ...rest: unknown[]) {
  report('lookup', host);
  return (promisesLookup as (...a: unknown[]) => unknown).call(dns.promises, host, ...rest);
};
// eslint-disable-next-line @typescript-eslint/unbound-method -- re-bound with apply() below
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
  // net.connect() hands its normalised [options, callback] pair as the first argument.
  const raw: unknown = Array.isArray(args[0]) ? args[0][0] : args[0];
  const first = raw as { host?: string; port?: number; path?: string } | number | string;
  report('connect', typeof first === 'object' && first !== null ? (first.path ?? `${first.host}:${first.port}`) : first);
  return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
};
syncBuiltinESMExports();
