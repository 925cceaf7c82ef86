// How tests start the CLI (or any TypeScript entry) as a child process.
//
// tap's process-info hook follows every child and records its coverage,
// unless the child's entry script lives under test/. A child run from
// src/cli.ts would report coverage through tsx's transpiled line mapping,
// which disagrees with tap's own loader, and the merged report would then mark
// lines the test processes did cover as uncovered. So children start from
// test/support/cli.ts (which just runs src/cli.ts) with tsx, fast to start,
// and coverage comes from the test processes alone.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CHILD_NODE_ARGS: readonly string[] = ['--import', 'tsx'];

/** The CLI entry for child processes: `node ...CHILD_NODE_ARGS CLI_ENTRY <args>`. */
export const CLI_ENTRY = join(dirname(fileURLToPath(import.meta.url)), 'cli.ts');
