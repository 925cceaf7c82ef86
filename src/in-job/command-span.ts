// The span for one wrapped command, and how the command's end maps to an exit
// code. Pure; the process handling lives in span-command.ts.
import { constants } from 'node:os';
import { basename } from 'node:path';
import type { Attributes } from '@opentelemetry/api';
import { ERROR_TYPE, PROCESS } from '../telemetry/attributes.js';
import { SpanKind, SpanStatusCode, type SpanRecord } from '../telemetry/spans.js';
import type { TraceContext } from './trace-context.js';

/** How the command ended. */
export type CommandEnd =
  | { readonly kind: 'exit'; readonly code: number }
  | { readonly kind: 'signal'; readonly signal: NodeJS.Signals }
  /** It never started (not found, not executable). */
  | { readonly kind: 'spawn-error'; readonly errno: string };

/** The exit code a shell would report: the code, 128 + signal number, 127 not found, 126 not executable. */
export function exitCodeOf(end: CommandEnd): number {
  switch (end.kind) {
    case 'exit':
      return end.code;
    case 'signal':
      return 128 + (constants.signals[end.signal] ?? 0);
    case 'spawn-error':
      return end.errno === 'ENOENT' ? 127 : 126;
  }
}

export interface CommandSpanInput {
  readonly name: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parent?: TraceContext;
  readonly command: string;
  readonly start: bigint;
  readonly end: bigint;
  readonly outcome: CommandEnd;
  /** `ci.*` job context, then the user's `--attr` pairs (which win). */
  readonly attributes: Attributes;
}

export function commandSpan(input: CommandSpanInput): SpanRecord {
  const code = exitCodeOf(input.outcome);
  const failed = code !== 0;
  const attributes: Attributes = {
    ...input.attributes,
    // Only the executable's name: arguments are shell-expanded and may carry secrets.
    [PROCESS.executableName]: basename(input.command),
  };
  if (input.outcome.kind !== 'spawn-error') attributes[PROCESS.exitCode] = code;
  let message: string | undefined;
  if (input.outcome.kind === 'signal') message = `terminated by ${input.outcome.signal}`;
  else if (input.outcome.kind === 'spawn-error') message = `could not start the command (${input.outcome.errno})`;
  else if (failed) message = `exit code ${code}`;
  if (failed) {
    attributes[ERROR_TYPE] =
      input.outcome.kind === 'signal' ? input.outcome.signal : input.outcome.kind === 'spawn-error' ? input.outcome.errno : String(code);
  }
  return {
    traceId: input.traceId,
    spanId: input.spanId,
    ...(input.parent ? { parentSpanId: input.parent.spanId, parentIsRemote: true } : {}),
    ...(input.parent?.traceState ? { traceState: input.parent.traceState } : {}),
    name: input.name,
    kind: SpanKind.INTERNAL,
    startTimeUnixNano: input.start,
    endTimeUnixNano: input.end,
    attributes,
    status: failed ? { code: SpanStatusCode.ERROR, message } : { code: SpanStatusCode.UNSET },
  };
}

export class UsageError extends Error {
  readonly code = 'USAGE';
}

/** `--attr key=value` pairs; the value may contain `=`. */
export function parseAttributePairs(pairs: readonly string[]): Attributes {
  const out: Attributes = {};
  pairs.forEach((pair, index) => {
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq).trim() : '';
    // The pair is not echoed: a mistyped one may be a secret value.
    if (!key) throw new UsageError(`--attr number ${index + 1}: expected key=value`);
    out[key] = pair.slice(eq + 1);
  });
  return out;
}
