// The admin listener: /healthz for liveness and endpoint state, /metrics for
// Prometheus. Separate from the runner-facing listener so it can bind elsewhere.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface AdminOptions {
  registry: Registry;
  health: () => Record<string, unknown>;
}

export function createAdminServer(options: AdminOptions): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
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
      options.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': options.registry.contentType }).end(text),
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
