// The runner proxy's asynchronous logger (docs/performance.md#logging): the
// same JSON lines as jsonLogger, pending lines written at exit, and a reader of
// stderr that stops reading never blocks the process (lines past the bounded
// buffer are dropped instead).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { CHILD_NODE_ARGS } from '../support/child-node.js';

const CHILD = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'support', 'async-logger-child.ts');

interface Run {
  stdout: string;
  stderrLines: Record<string, unknown>[];
  code: number | null;
}

/** Runs the child; with `stallStderr`, stderr is not read until the child has reported on stdout. */
function run(lines: number, pad: number, stallStderr: boolean): Promise<Run> {
  const child = spawn(process.execPath, [...CHILD_NODE_ARGS, CHILD, String(lines), String(pad)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`async logger child did not finish within 20 s (stdout ${JSON.stringify(stdout)}, ${stderr.length} stderr chars)`));
    }, 20_000);
    const readStderr = (): void => {
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (c: string) => (stderr += c));
      // A stream paused explicitly does not flow again when a 'data' listener is added.
      child.stderr.resume();
    };
    if (stallStderr) child.stderr.pause();
    else readStderr();
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => {
      stdout += c;
      // The child got this far while nobody read its stderr: now let its exit flush drain.
      if (stallStderr && stdout.includes('\n')) readStderr();
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stderrLines = stderr
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ stdout, stderrLines, code });
    });
  });
}

t.test('JSON lines with time, level, msg and the fields; nothing below the level; every line written by exit', async (t) => {
  const r = await run(50, 10, false);
  t.equal(r.code, 0);
  t.same(JSON.parse(r.stdout), { logged: 50 });
  t.equal(r.stderrLines.length, 50, 'every line, although the child called process.exit right after logging');
  const first = r.stderrLines[0]!;
  t.same(Object.keys(first).sort(), ['level', 'msg', 'n', 'padding', 'time'], 'undefined fields left out, no pid or hostname');
  t.equal(first.level, 'info');
  t.equal(first.msg, 'line');
  t.match(first.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // Every line exactly once. Their order is not promised at exit: a write still in flight on the asynchronous
  // destination can land after the lines flushed synchronously by the exit handler (each line carries its time).
  t.same(
    r.stderrLines.map((l) => l.n as number).sort((a, b) => a - b),
    Array.from({ length: 50 }, (_, i) => i),
    'every line exactly once',
  );
});

t.test('a reader that stops reading stderr does not block the logging process; lines past the buffer are dropped', async (t) => {
  // 8 MiB of log lines against a pipe of 64 KiB: written synchronously, the child would block at the first full pipe
  // and never reach its stdout report, and the test would time out.
  const lines = 8192;
  const r = await run(lines, 1000, true);
  t.equal(r.code, 0);
  t.same(JSON.parse(r.stdout), { logged: lines }, 'the child went on while its stderr was not read');
  t.ok(r.stderrLines.length > 0, 'lines that fitted are written');
  t.ok(r.stderrLines.length < lines, `some were dropped (${r.stderrLines.length} of ${lines} written)`);
  for (const l of r.stderrLines) if (l.msg !== 'line') t.fail(`unexpected line ${JSON.stringify(l).slice(0, 80)}`);
});
