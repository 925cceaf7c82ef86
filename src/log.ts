// Structured logs: one JSON object per line on stderr, one line per state
// change (never per span or per request). Fields are chosen by callers from
// metadata only; tokens, variable values and log content never go here.
// One Logger type for the whole product: each call site chooses its level.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  (level: LogLevel, msg: string, fields?: LogFields): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function jsonLogger(write: (line: string) => void = (line) => process.stderr.write(line), minLevel: LogLevel = 'info'): Logger {
  return (level, msg, fields) => {
    if (ORDER[level] < ORDER[minLevel]) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
  };
}

export const silentLogger: Logger = () => {};
