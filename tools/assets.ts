// Build step: tsc only emits JavaScript, so the non-TypeScript files that live
// beside the code (onboarding's Markdown templates, for one) are copied into
// dist/ with the same layout. Runs as `tsx tools/assets.ts` after tsc; it is
// a build tool and never ships. It also makes the bin executable: npm sets the
// mode when it links the bin, but a later rebuild writes dist/cli.js afresh
// (0644), and `npx gitlab-otel` through an existing link then fails with
// "Permission denied".
import { chmodSync, cpSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');
const CODE = new Set(['.ts', '.mts', '.cts']);

function copyAssets(dir: string): number {
  let copied = 0;
  for (const name of readdirSync(dir)) {
    const from = join(dir, name);
    if (statSync(from).isDirectory()) {
      copied += copyAssets(from);
    } else if (!CODE.has(extname(name))) {
      cpSync(from, join(dist, relative(src, from)));
      copied += 1;
    }
  }
  return copied;
}

const n = copyAssets(src);
chmodSync(join(dist, 'cli.js'), 0o755);
process.stdout.write(`assets: ${n} file(s) copied to dist/, dist/cli.js executable\n`);
