// The configuration as it crosses to the telemetry worker (docs/architecture.md#telemetry-thread).
// A worker gets its data by structured clone, which turns a URL into `{}`
// without complaint; ProxyConfig holds one URL (upstream.url) and otherwise
// only strings, numbers, booleans, arrays and plain objects. The codec makes
// that one field a string and back, and the round-trip test keeps it honest
// when ProxyConfig grows a field clone would mangle.
import type { ProxyConfig } from '../config/schema.js';

export type EncodedConfig = Omit<ProxyConfig, 'upstream'> & { upstream: Omit<ProxyConfig['upstream'], 'url'> & { url: string } };

export function encodeConfig(config: ProxyConfig): EncodedConfig {
  return { ...config, upstream: { ...config.upstream, url: config.upstream.url.href } };
}

export function decodeConfig(encoded: EncodedConfig): ProxyConfig {
  return { ...encoded, upstream: { ...encoded.upstream, url: new URL(encoded.upstream.url) } };
}
