// nginx as a reverse-proxy baseline: Debian's `nginx-light`, installed with
// apt-get when missing, run as its own instance on loopback from a generated
// configuration in a temporary directory (no daemon, pid, logs and temp paths
// in that directory). One process (`master_process off`) so its CPU time and
// peak RSS are read from one /proc entry, like the Node proxies'.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NGINX = '/usr/sbin/nginx';

/** Installs nginx-light when missing; returns its version string, or throws saying why it cannot. */
export function ensureNginx(log: (line: string) => void): string {
  if (!existsSync(NGINX)) {
    log('nginx: not installed; apt-get update && apt-get install nginx-light');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env, timeout: 300_000 });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'nginx-light'], { stdio: 'ignore', env, timeout: 300_000 });
  }
  // `nginx -v` prints "nginx version: nginx/1.22.1" on stderr.
  const out = spawnSync(NGINX, ['-v'], { encoding: 'utf8' });
  return /nginx\/([\w.]+)/.exec(`${out.stdout}${out.stderr}`)?.[1] ?? 'unknown';
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function config(dir: string, port: number, upstream: URL): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream gitlab {
    server ${upstream.host};
    keepalive 128;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://gitlab;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host ${upstream.host};
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
`;
}

export interface NginxProcess {
  child: ChildProcess;
  url: string;
}

/** Starts nginx in front of `upstream` (http://host:port) and waits until it accepts connections. */
export async function startNginx(upstream: string): Promise<NginxProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-bench-nginx-'));
  const port = await freePort();
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, config(dir, port, new URL(upstream)));
  const child = spawn(NGINX, ['-c', file, '-p', dir, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr.trim()}`);
    const up = await new Promise<boolean>((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.destroy();
        resolve(true);
      });
      sock.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`nginx did not listen within 15 s: ${stderr.trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url: `http://127.0.0.1:${port}` };
}
