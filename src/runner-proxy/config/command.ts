// `gitlab-otel check-config FILE`: validate without starting anything.
import { loadConfig } from './load.js';
import { ConfigError } from './schema.js';

export function checkConfigCommand(argv: string[]): number {
  const files = argv.filter((a) => a !== '--');
  if (files.length === 0 || files.some((f) => f === '-h' || f === '--help')) {
    process.stderr.write(
      'Usage: gitlab-otel check-config FILE [FILE …]\n\nValidates runner-proxy configuration files; exit 0 when all are valid, 2 otherwise.\n',
    );
    return files.length === 0 ? 2 : 0;
  }
  let failed = false;
  for (const file of files) {
    try {
      const { config, warnings } = loadConfig(file, process.env);
      for (const w of warnings) process.stderr.write(`${file}: warning: ${w}\n`);
      process.stdout.write(
        `${file}: ok (upstream ${config.upstream.url.origin}, listen ${config.listen.host}:${config.listen.port}, ${config.endpoints.length} endpoint(s))\n`,
      );
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      failed = true;
      process.stderr.write(`${err.message}\n`);
    }
  }
  return failed ? 2 : 0;
}
