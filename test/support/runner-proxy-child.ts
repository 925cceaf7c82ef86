// The real `gitlab-otel runner-proxy` CLI as a child process, for the restart
// tests: started from a configuration file, read through its JSON log lines on
// stderr, stopped by a signal. Also a read-only look at its job journal.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { readRecordFile } from '../../src/telemetry/export/record-file.js';
import { CHILD_NODE_ARGS, CLI_ENTRY } from './child-node.js';

export interface ProxyChild {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[];
  /** Resolves with the first log line matching, or rejects after `timeoutMs`. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs: number, what: string): Promise<Record<string, unknown>>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A port nothing listens on right now (the restarted proxy must come back on the same one). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** JSON is YAML: the configuration file is written as JSON. */
export function writeConfig(dir: string, name: string, doc: Record<string, unknown>): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

/** `nodeArgs`: node's own flags for the child, before the entry (e.g. V8 heap settings). */
export async function startProxyChild(configFile: string, timeoutMs = 30_000, nodeArgs: readonly string[] = []): Promise<ProxyChild> {
  // The child reads OTEL_* like any deployment would; the test's own must not leak in.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
  const child = spawn(process.execPath, [...CHILD_NODE_ARGS, ...nodeArgs, CLI_ENTRY, 'runner-proxy', '--config', configFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env,
  });
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let buffered = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        lines.push(JSON.parse(text) as Record<string, unknown>);
      } catch {
        lines.push({ level: 'raw', msg: text });
      }
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      for (const w of waiters) w();
    }),
  );
  const waitForLog: ProxyChild['waitForLog'] = (match, ms, what) =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = lines.find(match);
        if (found) {
          done();
          resolve(found);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          done();
          reject(new Error(`proxy exited before ${what}; its log: ${JSON.stringify(lines.slice(-5))}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${what} within ${ms} ms; proxy log: ${JSON.stringify(lines.slice(-5))}`));
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  const proxy = { child, lines, waitForLog, exited };
  await waitForLog((l) => l.msg === 'runner proxy listening', timeoutMs, 'listening line');
  return proxy;
}

/** Waits for the child to exit, bounded. */
export async function exitOf(proxy: ProxyChild, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`proxy did not exit within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([proxy.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The journal's current record for a job, read without opening the journal
 * (opening compacts the file, which the running proxy still appends to).
 */
export function journalRecord(spoolDir: string, jobId: number): Record<string, unknown> | undefined {
  const read = readRecordFile(join(spoolDir, 'journal', 'jobs.journal'));
  let last: Record<string, unknown> | undefined;
  for (const p of read.payloads) {
    const e = JSON.parse(p.toString('utf8')) as { t: string; job: string; s?: Record<string, unknown> };
    if (e.job !== String(jobId)) continue;
    last = e.t === 'p' ? e.s : undefined;
  }
  return last;
}

/** Log bytes the journalled log spans had parsed for a job. */
export function journalledOffset(spoolDir: string, jobId: number): number | undefined {
  const r = journalRecord(spoolDir, jobId) as { log?: { log?: { offset?: number } } } | undefined;
  return r?.log?.log?.offset;
}
