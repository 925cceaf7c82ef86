// `npm run docs`: regenerate README's CI/CD components section and
// docs/components.md from catalog.yml, after checking catalog.yml against
// templates/. `--check` only reports (exit 1) when either is stale, for CI.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { catalogDrift, parseCatalog } from './catalog.js';
import { componentName, parseComponentTemplate, type ComponentTemplate } from './component-template.js';
import { CatalogError } from './inputs.js';
import {
  COMPONENTS_DOC,
  extractComponentsSection,
  renderComponentsDoc,
  renderComponentsSection,
  spliceComponentsSection,
} from './readme.js';

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

export interface GeneratedDocs {
  readme: { current: string; next: string };
  /** COMPONENTS_DOC; `current` is undefined when the file does not exist yet. */
  componentsDoc: { current: string | undefined; next: string };
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function generateDocs(root: string): GeneratedDocs {
  const catalog = parseCatalog(readFileSync(join(root, 'catalog.yml'), 'utf8'));
  const drift = catalogDrift(catalog, loadTemplates(root));
  if (drift.length > 0) throw new CatalogError('CATALOG_INVALID', 'catalog.yml', `disagrees with templates/:\n  ${drift.join('\n  ')}`);
  const current = readFileSync(join(root, 'README.md'), 'utf8');
  return {
    readme: { current, next: spliceComponentsSection(current, renderComponentsSection(catalog)) },
    componentsDoc: { current: readIfExists(join(root, COMPONENTS_DOC)), next: renderComponentsDoc(catalog) },
  };
}

function main(argv: string[]): number {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  try {
    const { readme, componentsDoc } = generateDocs(root);
    const readmeStale = extractComponentsSection(readme.current) === undefined || readme.current !== readme.next;
    const docStale = componentsDoc.current !== componentsDoc.next;
    if (argv.includes('--check')) {
      if (readmeStale) process.stderr.write('README.md: the CI/CD components section is out of date; run `npm run docs`\n');
      if (docStale) process.stderr.write(`${COMPONENTS_DOC}: out of date; run \`npm run docs\`\n`);
      return readmeStale || docStale ? 1 : 0;
    }
    if (readme.current !== readme.next) writeFileSync(join(root, 'README.md'), readme.next);
    if (docStale) writeFileSync(join(root, COMPONENTS_DOC), componentsDoc.next);
    process.stdout.write(readme.current !== readme.next ? 'README.md: CI/CD components section regenerated\n' : 'README.md: up to date\n');
    process.stdout.write(docStale ? `${COMPONENTS_DOC}: regenerated\n` : `${COMPONENTS_DOC}: up to date\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
