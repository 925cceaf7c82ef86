// The runner proxy's logger (#13): pino behind the product's Logger type. Its own module so
// that the other commands, which log a few lines and exit, do not load pino.
import pino from 'pino';
import type { LogLevel, Logger } from '../log.js';

/** How much log text may wait for a slow reader of the descriptor before lines are dropped. */
const ASYNC_LOG_BUFFER_BYTES = 1024 * 1024;

/**
 * The runner proxy's logger: the same JSON lines as jsonLogger (time, level, msg and the fields), written by pino
 * through an asynchronous destination, so a line never blocks the forwarding event loop, and a reader of stderr that
 * stalls costs dropped lines (past a bounded buffer), never a stalled proxy (docs/performance.md#logging). Lines
 * still pending are written synchronously when the process exits.
 */
export function asyncJsonLogger(minLevel: LogLevel = 'info', fd = 2): Logger {
  const destination = pino.destination({ dest: fd, sync: false, maxLength: ASYNC_LOG_BUFFER_BYTES });
  const logger = pino(
    {
      level: minLevel,
      base: undefined,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return (level, msg, fields) => logger[level](fields ?? {}, msg);
}
