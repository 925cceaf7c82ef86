// Child process for the async logger test: logs through asyncJsonLogger on its
// stderr, then says on stdout (synchronous) that it went on, and exits with process.exit (pending lines flush then).
// argv: LINES (how many info lines), PAD (bytes of padding per line).
import { asyncJsonLogger } from '../../src/runner-proxy/async-logger.js';

const [lines, pad] = process.argv.slice(2).map(Number) as [number, number];
const log = asyncJsonLogger('info');
const padding = 'x'.repeat(pad);
log('debug', 'below the level', { n: -1 });
for (let n = 0; n < lines; n++) log('info', 'line', { n, padding, absent: undefined });
// A turn of the event loop after the writes: it runs only if no write held the thread.
setImmediate(() => {
  process.stdout.write(`${JSON.stringify({ logged: lines })}\n`);
  process.exit(0);
});
