// `npm run docs`: regenerate README's CI/CD components section from
// catalog.yml, after checking catalog.yml against templates/. `--check` only
// reports (exit 1) when README is stale, for CI.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { catalogDrift, parseCatalog } from './catalog.js';
import { componentName, parseComponentTemplate, type ComponentTemplate } from './component-template.js';
import { CatalogError } from './inputs.js';
import { extractComponentsSection, renderComponentsSection, spliceComponentsSection } from './readme.js';

/** Every component template under `root/templates`, by GitLab's path rule. */
export function loadTemplates(root: string): ComponentTemplate[] {
  const dir = join(root, 'templates');
  const out: ComponentTemplate[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const candidates = statSync(join(dir, entry)).isDirectory() ? [join(dir, entry, 'template.yml')] : [join(dir, entry)];
    for (const file of candidates) {
      const rel = relative(root, file).split('\\').join('/');
      if (!componentName(rel)) continue;
      try {
        out.push(parseComponentTemplate(readFileSync(file, 'utf8'), rel));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
    }
  }
  return out;
}

export function generateReadme(root: string): { current: string; next: string } {
  const catalog = parseCatalog(readFileSync(join(root, 'catalog.yml'), 'utf8'));
  const drift = catalogDrift(catalog, loadTemplates(root));
  if (drift.length > 0) throw new CatalogError('CATALOG_INVALID', 'catalog.yml', `disagrees with templates/:\n  ${drift.join('\n  ')}`);
  const current = readFileSync(join(root, 'README.md'), 'utf8');
  return { current, next: spliceComponentsSection(current, renderComponentsSection(catalog)) };
}

function main(argv: string[]): number {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  try {
    const { current, next } = generateReadme(root);
    if (argv.includes('--check')) {
      if (extractComponentsSection(current) === undefined || current !== next) {
        process.stderr.write('README.md: the CI/CD components section is out of date; run `npm run docs`\n');
        return 1;
      }
      return 0;
    }
    if (current !== next) writeFileSync(join(root, 'README.md'), next);
    process.stdout.write(current !== next ? 'README.md: CI/CD components section regenerated\n' : 'README.md: up to date\n');
    return 0;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
