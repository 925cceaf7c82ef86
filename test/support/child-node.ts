// How tests start the CLI (or any TypeScript entry) as a child process.
//
// Coverage includes what only runs in those children (src/cli.ts, the command
// modules, the in-job span commands). tap's process-info hook (NODE_OPTIONS,
// inherited) follows every child and collects its V8 coverage, except for
// entry scripts under test/, so children run src/cli.ts itself. They load
// TypeScript through the same loader tap gives the test processes (its
// @tapjs/typescript import, with --enable-source-maps), so a child's coverage
// is mapped back to the sources with the same source maps as the test
// processes' and the merge agrees line for line; a different transpiler (tsx
// here before) emits different maps and the merged report then marks lines
// as uncovered that were covered (docs/verification.md#coverage).
// ts-node would type-check each file it loads, which costs a child many
// seconds; tsconfig.json's "ts-node": {"transpileOnly": true} turns that off
// for tests and children alike (with isolatedModules the emit, and so the
// maps, are the same; `npm test` type-checks with tsc first). Outside tap (a
// test file run by hand) children use tsx.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const tapLoader = process.execArgv.filter((a) => /@tapjs[\\/]typescript[\\/]/.test(a));

export const CHILD_NODE_ARGS: readonly string[] = tapLoader.length > 0 ? [...tapLoader, '--enable-source-maps'] : ['--import', 'tsx'];

/** The CLI entry for child processes: `node ...CHILD_NODE_ARGS CLI_ENTRY <args>`. */
export const CLI_ENTRY = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli.ts');

/**
 * The part of the test process's environment that carries tap's coverage
 * collection into a child (its process-info hook in NODE_OPTIONS and the
 * _TAPJS_PROCESSINFO_* settings), for tests that otherwise give a child a
 * clean environment. Nothing else is copied: OTEL_* and the developer's shell
 * stay out. Empty outside tap.
 */
export function coverageEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('_TAPJS_PROCESSINFO_') && v !== undefined) env[k] = v;
  const hook = process.env.NODE_OPTIONS;
  if (hook && /@tapjs[\\/]processinfo[\\/]/.test(hook)) env.NODE_OPTIONS = hook;
  return env;
}
