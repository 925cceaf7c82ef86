// `gitlab-otel runner-proxy`: run the proxy until SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { ConfigError } from './config/schema.js';
import { loadConfig } from './config/load.js';
import { asyncJsonLogger } from './async-logger.js';
import { startRunnerProxy } from './runtime.js';
import { SHIPPED_NODE_OPTIONS, semiSpaceBoundMiB } from './young-generation.js';

const HELP = `Usage: gitlab-otel runner-proxy [--config FILE] [--listen HOST:PORT] [--upstream URL] [--admin-listen HOST:PORT]

Runs the transparent proxy between gitlab-runner and GitLab. Point the runner's
config.toml [[runners]] url at --listen; --upstream is your GitLab.

  --config FILE            YAML configuration (see runner-config/gitlab-otel.yml)
  --listen HOST:PORT       where the runner connects (default 127.0.0.1:8080)
  --upstream URL           GitLab's URL (overrides upstream.url)
  --admin-listen HOST:PORT /healthz and /metrics (default 127.0.0.1:9464)
`;

export async function runnerProxyCommand(argv: string[]): Promise<number> {
  let values: { config?: string; listen?: string; upstream?: string; 'admin-listen'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        listen: { type: 'string' },
        upstream: { type: 'string' },
        'admin-listen': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`gitlab-otel runner-proxy: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let loaded;
  try {
    loaded = loadConfig(values.config, process.env, {
      listen: values.listen,
      upstream: values.upstream,
      adminListen: values['admin-listen'],
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gitlab-otel runner-proxy: invalid configuration\n${err.message}\n`);
      return 2;
    }
    throw err;
  }
  // Asynchronous: no log line is a synchronous write on the forwarding event loop (docs/performance.md#logging).
  const log = asyncJsonLogger(loaded.config.logLevel);
  for (const w of loaded.warnings) log('warn', w);
  if (semiSpaceBoundMiB(process.execArgv, process.env.NODE_OPTIONS) === undefined) {
    log(
      'info',
      `V8's young generation is at Node's default: under load the proxy may pause for back-to-back full GCs; start it with NODE_OPTIONS=${SHIPPED_NODE_OPTIONS} as the shipped systemd unit and image do`,
      {
        code: 'YOUNG_GENERATION_DEFAULT',
        docs: 'docs/performance.md#garbage-collection',
      },
    );
  }
  const running = await startRunnerProxy(loaded.config, { log });
  const code = await new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      // A repeated signal must not kill the process halfway through journalling:
      // the stop is bounded (shutdown.grace + shutdown.flush_timeout) anyway.
      if (stopping) {
        log('info', 'already stopping', { signal });
        return;
      }
      stopping = true;
      log('info', 'stopping', { signal });
      running.stop().then(
        () => resolve(0),
        (err: unknown) => {
          log('error', `stop failed: ${(err as Error).message}`, { code: 'STOP_FAILED' });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  // Everything is spooled or delivered by now. A handle some library left open
  // (a gRPC channel, a retry timer) must not keep a stopped proxy alive; the
  // timer is unref'd, so a clean exit does not wait for it.
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}
