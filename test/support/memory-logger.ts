// Loggers for tests: the product's one Logger type, keeping what it is given.
import type { LogFields, Logger, LogLevel } from '../../src/log.js';

export interface LogLine {
  level: LogLevel;
  msg: string;
  fields?: LogFields;
}

/** A logger that keeps its lines in memory. */
export function memoryLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = ((level, msg, fields) => {
    lines.push({ level, msg, fields });
  }) as Logger & { lines: LogLine[] };
  logger.lines = lines;
  return logger;
}

/**
 * One log line flattened for matching: the export side logs stable event
 * names as its messages (`endpoint_state`, `spool_replayed`…), so tests match
 * `{ event: 'spool_replayed', spans: 25 }`.
 */
export interface LogEvent {
  readonly level: LogLevel;
  readonly event: string;
  readonly [key: string]: string | number | boolean | undefined;
}

/** A logger that appends each line to `into` as a LogEvent. */
export function recordEvents(into: LogEvent[]): Logger {
  return (level, msg, fields) => {
    into.push({ ...fields, level, event: msg });
  };
}
