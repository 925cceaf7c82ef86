// The bare pipe proxy of bench/passthrough-proxy.ts with undici instead of
// `http.request` towards the upstream: an undici `Pool` (unbounded connections,
// keep-alive, no pipelining, as the http pipe's keep-alive Agent), bodies
// streamed both ways — the runner's request body is handed to undici as a
// Readable, GitLab's answer is written by `Pool.stream` straight into the
// runner's response with no Readable in between. It answers issue #13's
// "undici's Pool/Dispatcher to the upstream instead of http.request": run beside
// the http pipe in one bench, the difference between the two is what moving our
// forwarder to undici could buy (docs/performance.md#undici-pool-vs-httprequest).
// argv: UPSTREAM_URL. Prints {"listen":"127.0.0.1:PORT"} on stderr.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const upstream = new URL(process.argv[2]!);
const pool = new Pool(upstream.origin, { connections: null, pipelining: 1 });

// undici refuses these request fields (it owns the connection and the framing); the http pipe passes
// them to its Agent, which replaces most of them too. `host` is the upstream's, set by undici.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

const server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 120_000 }, (req, res) => {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  }
  // A request without a body (no length, not chunked) gives undici none, so it sends no framing for one.
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  if (!hasBody) req.resume();
  pool.stream(
    { path: req.url ?? '/', method: req.method as 'GET', headers, body: hasBody ? req : null },
    ({ statusCode, headers: answer }) => {
      res.writeHead(statusCode, answer as http.OutgoingHttpHeaders);
      return res;
    },
    (err) => {
      if (err) res.destroy();
    },
  );
});
server.listen(0, '127.0.0.1', () => {
  process.stderr.write(`${JSON.stringify({ listen: `127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
});
