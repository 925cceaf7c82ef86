// Runs the real CLI (`src/cli.ts` through tsx) as a child process with a
// clean environment, the way a CI job runs it, and collects its output.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHILD_NODE_ARGS, CLI_ENTRY, coverageEnv } from './child-node.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Only what a job would have; nothing from the developer's shell (OTEL_* there would leak into the run). Under tap,
 * its coverage hook comes along so the child's code counts (test/support/child-node.ts).
 */
export function jobEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME ?? tmpdir(), ...coverageEnv() };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export function runProcess(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000, cwd = REPO): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')}: no exit within ${timeoutMs} ms\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** `gitlab-otel ARGS…` from source. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs?: number): Promise<CliRun> {
  return runProcess(process.execPath, [...CHILD_NODE_ARGS, CLI_ENTRY, ...args], env, timeoutMs);
}

/** A directory with an executable `gitlab-otel` that runs the CLI from source, for shell scripts that call it by name. */
export function cliOnPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-bin-'));
  const shim = join(dir, 'gitlab-otel');
  const quote = (a: string): string => `'${a.replaceAll("'", `'\\''`)}'`;
  const argv = [process.execPath, ...CHILD_NODE_ARGS, CLI_ENTRY].map(quote).join(' ');
  writeFileSync(shim, `#!/bin/sh\nexec ${argv} "$@"\n`, { mode: 0o755 });
  return dir;
}

export interface Certificate {
  key: Buffer;
  cert: Buffer;
  certFile: string;
}

/** A self-signed certificate for 127.0.0.1 (openssl CLI), for real TLS in tests. */
export function loopbackCertificate(): Certificate {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-injob-tls-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore', timeout: 30_000 },
  );
  return { key: readFileSync(keyFile), cert: readFileSync(certFile), certFile };
}
