// Subcommand dispatch. Each subcommand lives in its own module, loaded only
// when it runs, and returns an exit code: 0 success, 1 the work itself failed,
// 2 usage or configuration error.
import { VERSION } from '../version.js';

export { VERSION };

export type Subcommand = (argv: string[]) => number | Promise<number>;

interface Entry {
  summary: string;
  load: () => Promise<Subcommand>;
}

// One line per subcommand; keep the list sorted as `--help` shows it.
const SUBCOMMANDS: Record<string, Entry> = {
  'check-config': {
    summary: 'validate runner-proxy configuration files without starting anything',
    load: async () => (await import('../runner-proxy/config/command.js')).checkConfigCommand,
  },
  demo: {
    summary: 'run GitLab, a runner, the proxy and a collector on loopback and show the trace (start here)',
    load: async () => (await import('../demo/command.js')).demoCommand,
  },
  inspect: {
    summary: 'receive OTLP traces (gRPC, HTTP) and print each as a waterfall (terminal, HTML, JSON)',
    load: async () => (await import('../inspect/command.js')).inspect,
  },
  onboard: {
    summary: 'file "Add OpenTelemetry instrumentation" issues and start Duo developer/v1 workflows',
    load: async () => (await import('../onboarding/command.js')).onboardCommand,
  },
  'pipeline-span': {
    summary: "export the pipeline's root span (the job-telemetry component's .post job)",
    load: async () => (await import('../in-job/pipeline-span-command.js')).pipelineSpanCommand,
  },
  'runner-proxy': {
    summary: 'run the transparent proxy between gitlab-runner and GitLab that exports job and stage spans',
    load: async () => (await import('../runner-proxy/command.js')).runnerProxyCommand,
  },
  span: {
    summary: "run a command as a child span of the job's TRACEPARENT",
    load: async () => (await import('../in-job/span-command.js')).spanCommand,
  },
};

export function usage(): string {
  const lines = Object.entries(SUBCOMMANDS).map(([name, s]) => `  ${name.padEnd(16)} ${s.summary}`);
  return `Usage: gitlab-otel <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'gitlab-otel <command> --help' for a command's options.\n`;
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(usage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  if (name === '--version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const entry = SUBCOMMANDS[name];
  if (!entry) {
    process.stderr.write(`gitlab-otel: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  const command = await entry.load();
  return await command(rest);
}
