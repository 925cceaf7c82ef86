// The admin listener: /healthz for liveness and endpoint state, /metrics for
// Prometheus. Separate from the runner-facing listener so it can bind elsewhere.
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface AdminOptions {
  registry: Registry;
  /**
   * More series in the same text format, appended to the registry's (the
   * CI/CD metrics' Prometheus reader: docs/metrics.md#prometheus). Its
   * failure leaves them out; the proxy's own series are still served.
   */
  extraMetrics?: () => Promise<string>;
  /**
   * The whole /metrics text instead of the registry's (and extraMetrics'):
   * `telemetry.thread: worker` sums the two threads' registries
   * (docs/architecture.md#telemetry-thread). Served with the registry's Content-Type.
   */
  metrics?: () => Promise<string>;
  health: () => Record<string, unknown>;
  /**
   * When set, /metrics and the details of /healthz need `Authorization: Bearer <token>`;
   * a bare /healthz still answers `{"status":"ok"}` for liveness probes (docs/security.md#deployment).
   */
  bearerToken?: string;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Constant-time comparison of the presented bearer token with the configured one. */
function authorized(req: http.IncomingMessage, expected: Buffer | undefined): boolean {
  if (!expected) return true;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return !!m && timingSafeEqual(digest(m[1]!), expected);
}

export function createAdminServer(options: AdminOptions): http.Server {
  const expected = options.bearerToken ? digest(options.bearerToken) : undefined;
  return http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const allowed = authorized(req, expected);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      if (!allowed) {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"ok"}');
        return;
      }
      let body: string;
      try {
        body = JSON.stringify({ status: 'ok', ...options.health() });
      } catch (err) {
        body = JSON.stringify({ status: 'ok', health_error: String(err) });
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
      return;
    }
    if (path === '/metrics') {
      if (!allowed) {
        res.writeHead(401, { 'Content-Type': 'text/plain', 'WWW-Authenticate': 'Bearer' }).end('bearer token required\n');
        return;
      }
      const extra = options.extraMetrics?.().catch(() => '') ?? Promise.resolve('');
      Promise.all([options.metrics ? options.metrics() : options.registry.metrics(), extra]).then(
        // Both are Prometheus text format 0.0.4 (the registry's Content-Type); families end with a newline.
        ([text, more]) =>
          res
            .writeHead(200, { 'Content-Type': options.registry.contentType })
            .end(more === '' ? text : `${text.endsWith('\n') || text === '' ? text : `${text}\n`}${more}`),
        (err: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(String(err)),
      );
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
  });
}

export async function listenAdmin(server: http.Server, host: string, port: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}
