// `gitlab-otel span --name NAME [--attr k=v …] -- COMMAND …`
//
// Runs COMMAND as a child span of the job's TRACEPARENT, hands the command a
// new TRACEPARENT so instrumented tools nest under it, and exits with the
// command's own code. The command's stdio is inherited untouched; our only
// output is one stderr line when telemetry could not be sent. No telemetry
// problem (bad TRACEPARENT, no endpoint, collector down) changes the exit code.
import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { newSpanId, newTraceId, nowNanos } from '../telemetry/spans.js';
import { commandSpan, exitCodeOf, parseAttributePairs, UsageError, type CommandEnd } from './command-span.js';
import { jobContextAttributes } from './ci-attributes.js';
import { DEFAULT_EXPORT_TIMEOUT_MS, exportJobSpans, planJobExport } from './job-export.js';
import { formatTraceparent, jobParent, type Env } from './trace-context.js';

const USAGE = `Usage: gitlab-otel span --name NAME [--attr key=value …] [--id-token-variable VAR] [--timeout-ms N] -- COMMAND [ARG …]

Runs COMMAND as a child span of the job's TRACEPARENT and exits with its exit code.
  --name NAME               span name (default: the command's name)
  --attr key=value          span attribute; repeatable
  --id-token-variable VAR   GitLab id_tokens variable holding the collector's bearer token
                            (default: $GITLAB_OTEL_ID_TOKEN_VARIABLE or GITLAB_OTEL_ID_TOKEN)
  --timeout-ms N            bound on the export after the command ends (default ${DEFAULT_EXPORT_TIMEOUT_MS})
Export goes to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT over OTLP/gRPC;
with neither set nothing is exported.
`;

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

interface SpanOptions {
  name?: string;
  attributes: ReturnType<typeof parseAttributePairs>;
  idTokenVariable?: string;
  timeoutMs: number;
  command: string;
  args: string[];
}

export function parseSpanArgs(argv: string[]): SpanOptions | 'help' {
  const sep = argv.indexOf('--');
  const own = sep === -1 ? argv : argv.slice(0, sep);
  if (own.includes('--help') || own.includes('-h')) return 'help';
  if (sep === -1) throw new UsageError("missing '--' before the command");
  const [command, ...args] = argv.slice(sep + 1);
  if (!command) throw new UsageError("no command after '--'");
  let values;
  try {
    ({ values } = parseArgs({
      args: own,
      options: {
        name: { type: 'string' },
        attr: { type: 'string', multiple: true },
        'id-token-variable': { type: 'string' },
        'timeout-ms': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const timeout = values['timeout-ms'] === undefined ? DEFAULT_EXPORT_TIMEOUT_MS : Number(values['timeout-ms']);
  if (!Number.isInteger(timeout) || timeout <= 0) throw new UsageError('--timeout-ms must be a positive integer');
  return {
    name: values.name?.trim() || undefined,
    attributes: parseAttributePairs(values.attr ?? []),
    idTokenVariable: values['id-token-variable'],
    timeoutMs: timeout,
    command,
    args,
  };
}

function runCommand(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<CommandEnd> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit', env });
    const forward = (signal: NodeJS.Signals): void => {
      child.kill(signal);
    };
    for (const s of FORWARDED) process.on(s, forward);
    const done = (end: CommandEnd): void => {
      for (const s of FORWARDED) process.off(s, forward);
      resolve(end);
    };
    child.once('error', (err: NodeJS.ErrnoException) => done({ kind: 'spawn-error', errno: err.code ?? 'EACCES' }));
    child.once('exit', (code, signal) => done(signal ? { kind: 'signal', signal } : { kind: 'exit', code: code ?? 0 }));
  });
}

export async function spanCommand(argv: string[]): Promise<number> {
  let options: SpanOptions | 'help';
  try {
    options = parseSpanArgs(argv);
  } catch (err) {
    process.stderr.write(`gitlab-otel span: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const env: Env = process.env;
  const parent = jobParent(env).context;
  const traceId = parent?.traceId ?? newTraceId();
  const spanId = newSpanId();
  const sampled = parent?.sampled ?? true;
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TRACEPARENT: formatTraceparent(traceId, spanId, sampled) };
  if (parent?.traceState) childEnv.TRACESTATE = parent.traceState;

  const start = nowNanos();
  const outcome = await runCommand(options.command, options.args, childEnv);
  const end = nowNanos();
  const code = exitCodeOf(outcome);
  if (outcome.kind === 'spawn-error') {
    process.stderr.write(`gitlab-otel span: cannot run ${options.command} (${outcome.errno})\n`);
  }
  if (!sampled) return code;

  const plan = planJobExport(env, { idTokenVariable: options.idTokenVariable, timeoutMs: options.timeoutMs });
  if (plan.kind === 'off') return code;
  for (const note of plan.notes) process.stderr.write(`gitlab-otel span: ${note}\n`);
  const span = commandSpan({
    name: options.name ?? basename(options.command),
    traceId,
    spanId,
    parent,
    command: options.command,
    start,
    end,
    outcome,
    attributes: { ...jobContextAttributes(env), ...options.attributes },
  });
  const result = await exportJobSpans([span], plan);
  if (!result.ok) process.stderr.write(`gitlab-otel span: span '${span.name}' not exported to ${plan.endpoint.name}: ${result.reason}\n`);
  return code;
}

export default spanCommand;
