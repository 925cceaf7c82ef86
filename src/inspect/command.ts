// `gitlab-otel inspect`: an OTLP receiver (gRPC, and OTLP/HTTP on the usual
// 4318 beside it) for checking a real setup. Point the runner proxy (or any
// OTLP exporter, or GitLab's `otel_endpoints`) at it; it prints each
// completed trace (see trace-completion.ts for what "completed" means) as a
// waterfall, or as one JSON object per line, and can keep a self-contained
// HTML waterfall of every trace seen so far up to date. How it listens, and
// why the defaults are what they are: docs/inspect.md#receiving.
import { rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BlockList, isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';
import { OtlpHttpReceiver, OtlpReceiver, type ReceivedSpan } from '../telemetry/receiver.js';
import { renderHtml } from './html.js';
import { TraceCompletion, DEFAULT_COMPLETION, type CompletedTrace } from './trace-completion.js';
import { traceToJson } from './trace-json.js';
import { DEFAULT_WIDTH, renderWaterfall } from './waterfall.js';

export const DEFAULT_LISTEN = '127.0.0.1:4317';
/** OTLP/HTTP's registered port beside gRPC's 4317, as collectors default to. */
export const DEFAULT_HTTP_LISTEN = '127.0.0.1:4318';
/** Where OTLP/HTTP exporters post traces (the OTLP specification's default path). */
export const HTTP_TRACES_PATH = '/v1/traces';

export const USAGE = `Usage: gitlab-otel inspect [options]

Receives OTLP traces (gRPC, and OTLP/HTTP binary protobuf) and prints each
completed trace as a waterfall; spans of one trace may come over either.
A trace is completed when its root span (no parent, or a remote parent) has
arrived and no new span for it arrived for --quiet-ms; a trace whose root
never arrives is printed after ten times that, marked as without root.

Options:
  --listen HOST:PORT  where to receive OTLP/gRPC (default ${DEFAULT_LISTEN};
                      port 0 picks a free port; the bound address goes to stderr)
  --http-listen HOST:PORT|off
                      where to receive OTLP/HTTP, POST ${HTTP_TRACES_PATH} (default
                      ${DEFAULT_HTTP_LISTEN}, skipped with a warning when taken;
                      off: gRPC only; the URL to export to goes to stderr)
  --attributes        show each span's attributes under it
  --html FILE         keep FILE a self-contained HTML waterfall of all traces seen
  --json              print one JSON object per completed trace instead
  --quiet-ms N        quiet time that completes a trace (default ${DEFAULT_COMPLETION.quietMs})
  --width N           line width (default: the terminal's, else ${DEFAULT_WIDTH})
  -h, --help          show this help

Both listen on loopback by default; another address is allowed and said on
stderr (anything that reaches it can send spans: plaintext, no authentication).
Colours are used when stdout is a terminal and NO_COLOR is not set.
Stop with Ctrl-C (SIGINT) or SIGTERM: traces still waiting are printed first.
`;

export type InspectErrorCode = 'INSPECT_USAGE' | 'INSPECT_LISTEN_FAILED' | 'INSPECT_HTML_WRITE_FAILED';

export class InspectError extends Error {
  readonly code: InspectErrorCode;
  constructor(code: InspectErrorCode, message: string) {
    super(message);
    this.name = 'InspectError';
    this.code = code;
  }
}

export interface ListenAddress {
  /** As grpc-js binds it: an IPv6 address keeps its brackets. */
  host: string;
  port: number;
}

/** `HOST:PORT` or `[IPV6]:PORT`; errors name `--flag`. */
export function parseListen(text: string, flag = 'listen', example = DEFAULT_LISTEN): ListenAddress {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) {
    throw new InspectError('INSPECT_USAGE', `--${flag} must be HOST:PORT (e.g. ${example}), got '${text}'`);
  }
  return { host: match[1]!, port };
}

export interface HttpListenChoice {
  /** Absent: no OTLP/HTTP. */
  httpListen?: ListenAddress;
  /**
   * True for the default address: the user did not ask for it, so a taken port is a warning, not a failure
   * (`inspect` with no flags must start wherever it started before OTLP/HTTP; docs/inspect.md#receiving).
   */
  httpListenOptional: boolean;
}

/** What `--http-listen` (undefined when not given) asks for; `listen` is the parsed `--listen`. */
export function parseHttpListen(text: string | undefined, listen: ListenAddress): HttpListenChoice {
  if (text === undefined) return { httpListen: parseListen(DEFAULT_HTTP_LISTEN, 'http-listen'), httpListenOptional: true };
  if (text.trim() === 'off') return { httpListenOptional: false };
  const httpListen = parseListen(text, 'http-listen', DEFAULT_HTTP_LISTEN);
  if (httpListen.port !== 0 && httpListen.port === listen.port && httpListen.host === listen.host) {
    throw new InspectError('INSPECT_USAGE', `--http-listen and --listen are both ${text.trim()}: each needs its own port`);
  }
  return { httpListen, httpListenOptional: false };
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** The host without the brackets an IPv6 address has in HOST:PORT. */
function bareHost(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * Whether a listen host only accepts connections from this machine: `localhost`,
 * 127.0.0.0/8, ::1 (IPv4-mapped forms included). A name other than `localhost`
 * counts as not loopback: what it resolves to is not known here.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = bareHost(host);
  if (bare.toLowerCase() === 'localhost') return true;
  try {
    return LOOPBACK.check(bare, isIPv6(bare) ? 'ipv6' : 'ipv4');
  } catch {
    return false; // not an IP address
  }
}

function parseCount(name: string, text: string, min: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || !Number.isSafeInteger(Number(text))) {
    throw new InspectError('INSPECT_USAGE', `--${name} must be a whole number ≥ ${min}, got '${text}'`);
  }
  return Number(text);
}

export interface InspectorOptions {
  /** Where to receive OTLP/gRPC. */
  listen: ListenAddress;
  /** Where to receive OTLP/HTTP as well (POST /v1/traces); its spans join the same traces. */
  httpListen?: ListenAddress;
  /** When `httpListen` cannot be bound: warn on `err` and go on with gRPC alone, instead of failing. */
  httpListenOptional?: boolean;
  attributes?: boolean;
  html?: string;
  json?: boolean;
  quietMs?: number;
  width?: number;
  color?: boolean;
  /** Told about every completed trace, after it was printed. */
  onTrace?: (completed: CompletedTrace) => void;
  /**
   * Let `receiver.spans` / `receiver.calls` grow with everything received
   * (default true, for callers that `waitFor` on the receiver). A long-running
   * inspector passes false: the receiver keeps every span and call for tests,
   * and the completion tracker already holds the bounded copy it needs.
   */
  retainReceived?: boolean;
}

export interface InspectorOutput {
  out: (text: string) => void;
  err: (text: string) => void;
}

export interface Inspector {
  /** The bound address (the real port when 0 was asked for). */
  readonly address: ListenAddress;
  /** `http://HOST:PORT`, the form OTLP exporters take. */
  readonly url: string;
  readonly receiver: OtlpReceiver;
  /** The bound OTLP/HTTP address, when receiving OTLP/HTTP. */
  readonly httpAddress?: ListenAddress;
  /** `http://HOST:PORT/v1/traces`, the URL an OTLP/HTTP exporter (or GitLab's `otel_endpoints`) posts to. */
  readonly httpUrl?: string;
  readonly httpReceiver?: OtlpHttpReceiver;
  /** Spans received so far, over both transports. */
  readonly spanCount: number;
  /** Prints every trace still waiting, writes the HTML a last time, stops receiving. */
  stop(): Promise<void>;
}

async function writeAtomically(file: string, content: string): Promise<void> {
  // A browser reloading the page never sees a half-written file.
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  await writeFile(tmp, content);
  await rename(tmp, file);
}

export async function startInspector(options: InspectorOptions, output: InspectorOutput): Promise<Inspector> {
  const quietMs = options.quietMs ?? DEFAULT_COMPLETION.quietMs;
  const completion = new TraceCompletion({ quietMs, orphanQuietMs: quietMs * 10 });
  const width = options.width ?? DEFAULT_WIDTH;
  let timer: NodeJS.Timeout | undefined;
  let htmlWrite: Promise<void> = Promise.resolve();
  let htmlQueued = false;
  /** The last write's failure, until a write succeeds. */
  let htmlError: string | undefined;
  let started = false;

  // Rendering every trace kept is the costly part, so writes coalesce: while
  // one is queued, later requests share it, and it renders when it runs.
  const writeHtml = (): Promise<void> => {
    const file = options.html;
    if (!file || htmlQueued) return htmlWrite;
    htmlQueued = true;
    htmlWrite = htmlWrite.then(async () => {
      htmlQueued = false;
      try {
        await writeAtomically(file, renderHtml(completion.all(), { generatedAt: new Date() }));
        htmlError = undefined;
      } catch (err) {
        // Report once per failure streak, not on every trace; at startup the caller throws instead.
        if (started && htmlError === undefined) {
          output.err(`inspect: cannot write ${file}: ${(err as Error).message} (INSPECT_HTML_WRITE_FAILED)\n`);
        }
        htmlError = (err as Error).message;
      }
    });
    return htmlWrite;
  };

  const print = (completed: CompletedTrace): void => {
    const { trace } = completed;
    if (completed.update) output.err(`inspect: trace ${trace.traceId} received more spans; printing it again\n`);
    if (!completed.rootReceived) output.err(`inspect: trace ${trace.traceId}: its root span was not received\n`);
    if (options.json) {
      output.out(`${JSON.stringify({ ...traceToJson(trace), update: completed.update })}\n`);
    } else {
      output.out(`${renderWaterfall(trace, { width, color: options.color ?? false, attributes: options.attributes ?? false })}\n`);
    }
    options.onTrace?.(completed);
  };

  const check = (): void => {
    timer = undefined;
    const ready = completion.due(Date.now());
    for (const completed of ready) {
      try {
        print(completed);
      } catch (err) {
        // A failing output stream or onTrace callback must not take the receiver down.
        output.err(`inspect: could not print trace ${completed.trace.traceId}: ${(err as Error).message}\n`);
      }
    }
    if (ready.length > 0) void writeHtml();
    schedule();
  };

  function schedule(): void {
    if (timer) clearTimeout(timer);
    const next = completion.nextCheckAt();
    timer = next === undefined ? undefined : setTimeout(check, Math.max(0, next - Date.now()));
  }

  if (options.html) {
    await writeHtml();
    if (htmlError !== undefined) {
      throw new InspectError('INSPECT_HTML_WRITE_FAILED', `cannot write --html file ${options.html}: ${htmlError}`);
    }
  }
  started = true;

  let spanCount = 0;
  let httpReceiver: OtlpHttpReceiver | undefined;
  // Both transports feed the one completion tracker, so a trace whose spans
  // arrive over both is assembled as one.
  const received = (spans: ReceivedSpan[]): void => {
    spanCount += spans.length;
    if (options.retainReceived === false) {
      receiver.spans.length = 0;
      receiver.calls.length = 0;
      if (httpReceiver) {
        httpReceiver.spans.length = 0;
        httpReceiver.calls.length = 0;
        httpReceiver.refusals.length = 0;
      }
    }
    completion.add(spans, Date.now());
    schedule();
  };
  const receiver: OtlpReceiver = new OtlpReceiver({ host: options.listen.host, port: options.listen.port, onSpans: received });
  try {
    await receiver.start();
  } catch (err) {
    throw new InspectError(
      'INSPECT_LISTEN_FAILED',
      `cannot listen on ${options.listen.host}:${options.listen.port} (--listen): ${(err as Error).message}`,
    );
  }

  if (options.httpListen) {
    const { host, port } = options.httpListen;
    // A refused request is an exporter pointed at the wrong path or speaking
    // JSON: its spans would never show, so say why, once per status
    // (docs/inspect.md#receiving).
    const refusedStatuses = new Set<number>();
    const candidate = new OtlpHttpReceiver({
      host: bareHost(host),
      port,
      path: HTTP_TRACES_PATH,
      onSpans: received,
      onRefusal: ({ status, reason }) => {
        if (refusedStatuses.has(status)) return;
        refusedStatuses.add(status);
        output.err(`inspect: refused an OTLP/HTTP request (${status}): ${reason}; further ${status}s are not reported\n`);
      },
    });
    try {
      await candidate.start();
      httpReceiver = candidate;
    } catch (err) {
      const problem = `cannot listen on ${host}:${port} (--http-listen): ${(err as Error).message}`;
      if (!options.httpListenOptional) {
        await receiver.stop();
        throw new InspectError('INSPECT_LISTEN_FAILED', problem);
      }
      output.err(`inspect: not receiving OTLP/HTTP: ${problem}; pass --http-listen HOST:PORT (port 0 for any) or off\n`);
    }
  }

  const address = { host: options.listen.host, port: receiver.port };
  const http = httpReceiver
    ? { httpAddress: { host: options.httpListen!.host, port: httpReceiver.port }, httpUrl: httpReceiver.url, httpReceiver }
    : {};
  let stopped: Promise<void> | undefined;

  return {
    address,
    url: receiver.url,
    receiver,
    ...http,
    get spanCount() {
      return spanCount;
    },
    stop: () =>
      (stopped ??= (async () => {
        await Promise.all([receiver.stop(), httpReceiver?.stop()]);
        if (timer) clearTimeout(timer);
        timer = undefined;
        completion.flush().forEach(print);
        await writeHtml();
      })()),
  };
}

/** The stderr line for a receiver reachable from other machines, or undefined on loopback. */
export function nonLoopbackNotice(flag: string, address: ListenAddress): string | undefined {
  if (isLoopbackHost(address.host)) return undefined;
  return `inspect: ${flag} ${address.host}:${address.port} is not a loopback address: anything that can reach it can send spans (plaintext, no authentication)\n`;
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

export async function inspect(argv: string[]): Promise<number> {
  const err = (text: string): void => void process.stderr.write(text);
  let options: InspectorOptions;
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        listen: { type: 'string', default: DEFAULT_LISTEN },
        'http-listen': { type: 'string' },
        attributes: { type: 'boolean', default: false },
        html: { type: 'string' },
        json: { type: 'boolean', default: false },
        'quiet-ms': { type: 'string' },
        width: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    const noColor = (process.env.NO_COLOR ?? '') !== '';
    const listen = parseListen(values.listen);
    options = {
      listen,
      ...parseHttpListen(values['http-listen'], listen),
      attributes: values.attributes,
      json: values.json,
      quietMs: values['quiet-ms'] === undefined ? undefined : parseCount('quiet-ms', values['quiet-ms'], 0),
      width:
        values.width === undefined
          ? process.stdout.isTTY && process.stdout.columns
            ? process.stdout.columns
            : DEFAULT_WIDTH
          : parseCount('width', values.width, 40),
      color: Boolean(process.stdout.isTTY) && !noColor,
      ...(values.html === undefined ? {} : { html: values.html }),
    };
  } catch (e) {
    const message = e instanceof InspectError ? e.message : (e as Error).message;
    err(`gitlab-otel inspect: ${message}\n\n${USAGE}`);
    return 2;
  }

  let inspector: Inspector;
  try {
    inspector = await startInspector(
      { ...options, retainReceived: false },
      {
        out: (text) => void process.stdout.write(text),
        err,
      },
    );
  } catch (e) {
    const code = e instanceof InspectError ? e.code : 'INSPECT_LISTEN_FAILED';
    err(`gitlab-otel inspect: ${(e as Error).message} (${code})\n`);
    return code === 'INSPECT_USAGE' ? 2 : 1;
  }
  err(`inspect: receiving OTLP/gRPC on ${inspector.address.host}:${inspector.address.port}\n`);
  if (inspector.httpUrl) err(`inspect: receiving OTLP/HTTP on ${inspector.httpUrl}\n`);
  for (const [flag, address] of [
    ['--listen', inspector.address],
    ['--http-listen', inspector.httpAddress],
  ] as const) {
    const notice = address && nonLoopbackNotice(flag, address);
    if (notice) err(notice);
  }
  if (options.html) err(`inspect: writing HTML to ${options.html}\n`);

  const signal = await waitForSignal();
  err(`inspect: ${signal}, printing traces still waiting and stopping\n`);
  await inspector.stop();
  err(`inspect: stopped after ${inspector.spanCount} span(s)\n`);
  return 0;
}

export default inspect;
