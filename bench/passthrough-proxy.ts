// The floor any Node.js proxy pays on this machine: a plain pass-through
// reverse proxy with no telemetry at all, run as its own process. The proxy
// benchmark reports our overhead next to this one.
// argv: UPSTREAM_URL. Prints {"listen":"127.0.0.1:PORT"} on stderr.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const upstream = new URL(process.argv[2]!);
const agent = new http.Agent({ keepAlive: true });
const server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 120_000 }, (req, res) => {
  const out = http.request(
    {
      agent,
      hostname: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: upstream.host },
    },
    (ures) => {
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      ures.pipe(res);
    },
  );
  out.on('error', () => res.destroy());
  req.pipe(out);
});
server.listen(0, '127.0.0.1', () => {
  process.stderr.write(`${JSON.stringify({ listen: `127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
});
