// The spool directory holds span attributes and the job journal a job's
// unparsed log tail, so it is the proxy user's alone: directories 0700 and
// files 0600 whatever the umask, and a directory handed to us looser (a
// Kubernetes emptyDir is 0777) is tightened at start (docs/security.md#files).
import { chmodSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

export class PrivateDirError extends Error {
  readonly code = 'SPOOL_DIR_INSECURE';
  constructor(message: string) {
    super(message);
    this.name = 'PrivateDirError';
  }
}

function tighten(path: string, mode: number, isDir: boolean): void {
  const st = statSync(path);
  if ((st.mode & 0o777) === mode) return;
  try {
    chmodSync(path, mode);
  } catch (err) {
    throw new PrivateDirError(
      `spool ${isDir ? 'directory' : 'file'} ${path} is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} and cannot be made ${mode.toString(8).padStart(4, '0')} (${(err as NodeJS.ErrnoException).code ?? 'error'}); it would expose span data and job state to other users`,
    );
  }
}

/**
 * Creates `dir` if needed and makes it, and everything already under it
 * (three levels: the journal and endpoint spools), owner-only. Throws
 * PrivateDirError when a mode cannot be tightened.
 */
export function securePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const walk = (path: string, depth: number): void => {
    tighten(path, PRIVATE_DIR_MODE, true);
    if (depth === 0) return;
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) walk(child, depth - 1);
      else if (entry.isFile()) tighten(child, PRIVATE_FILE_MODE, false);
    }
  };
  walk(dir, 3);
}
