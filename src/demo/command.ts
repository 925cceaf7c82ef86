// `gitlab-otel demo`: argument parsing and the process edges (stdout, TTY,
// NO_COLOR, exit code) around runDemo.
import { parseArgs } from 'node:util';
import { DEFAULT_WIDTH } from '../inspect/waterfall.js';
import { runDemo, type DemoOptions } from './demo.js';

export const MAX_JOBS = 20;
export const MAX_COLLECTOR_DOWN_SECONDS = 60;

export const USAGE = `Usage: gitlab-otel demo [options]

Runs the product end to end in this process, on loopback only: a GitLab
simulator handing out a top-level pipeline's jobs as GitLab 19 does
(features.tracing naming its OTLP/HTTP collector), the real runner proxy
exporting to that collector, runner simulators uploading real-looking job logs
through the proxy, and the collector printing the trace as a waterfall.

Options:
  --jobs N                  jobs in the pipeline, run at once (default 3, at most ${MAX_JOBS})
  --fail                    one job fails in its script: its spans carry ERROR
  --collector-down SECONDS  the collector listens only after SECONDS: the jobs
                            finish untouched, the spans arrive once it is back
  --json                    one JSON document on stdout (traces, jobs, counts);
                            progress goes to stderr
  --quick                   compress time further (a second or two per job)
  -h, --help                show this help

Colours are used when stdout is a terminal and NO_COLOR is not set.
`;

export class DemoUsageError extends Error {
  readonly code = 'DEMO_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'DemoUsageError';
  }
}

export interface DemoArgs {
  help: boolean;
  jobs: number;
  fail: boolean;
  collectorDownMs: number;
  json: boolean;
  quick: boolean;
}

/** Parses and checks the arguments; throws DemoUsageError naming the bad one. */
export function parseDemoArgs(argv: string[]): DemoArgs {
  let values: { jobs?: string; fail?: boolean; 'collector-down'?: string; json?: boolean; quick?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        jobs: { type: 'string' },
        fail: { type: 'boolean' },
        'collector-down': { type: 'string' },
        json: { type: 'boolean' },
        quick: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new DemoUsageError((err as Error).message);
  }
  let jobs = 3;
  if (values.jobs !== undefined) {
    jobs = Number(values.jobs);
    if (!/^\d+$/.test(values.jobs) || jobs < 1 || jobs > MAX_JOBS) {
      throw new DemoUsageError(`--jobs must be a whole number from 1 to ${MAX_JOBS}, got '${values.jobs}'`);
    }
  }
  let collectorDownMs = 0;
  const down = values['collector-down'];
  if (down !== undefined) {
    const seconds = Number(down);
    if (!/^\d+(\.\d+)?$/.test(down) || seconds > MAX_COLLECTOR_DOWN_SECONDS) {
      throw new DemoUsageError(`--collector-down must be seconds from 0 to ${MAX_COLLECTOR_DOWN_SECONDS}, got '${down}'`);
    }
    collectorDownMs = Math.round(seconds * 1000);
  }
  return {
    help: values.help ?? false,
    jobs,
    fail: values.fail ?? false,
    collectorDownMs,
    json: values.json ?? false,
    quick: values.quick ?? false,
  };
}

export async function demoCommand(argv: string[]): Promise<number> {
  let args: DemoArgs;
  try {
    args = parseDemoArgs(argv);
  } catch (err) {
    process.stderr.write(`gitlab-otel demo: ${(err as Error).message} (DEMO_USAGE)\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const tty = Boolean(process.stdout.isTTY);
  const options: DemoOptions = {
    jobs: args.jobs,
    fail: args.fail,
    collectorDownMs: args.collectorDownMs,
    json: args.json,
    quick: args.quick,
    color: tty && !args.json && (process.env.NO_COLOR ?? '') === '',
    width: tty && process.stdout.columns ? process.stdout.columns : DEFAULT_WIDTH,
  };
  try {
    const result = await runDemo(options, {
      out: (text) => void process.stdout.write(text),
      err: (text) => void process.stderr.write(text),
    });
    return result.ok ? 0 : 1;
  } catch (err) {
    process.stderr.write(`gitlab-otel demo: ${(err as Error).message}\n`);
    return 1;
  }
}

export default demoCommand;
