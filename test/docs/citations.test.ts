// Comments cite the repository's own docs (`docs/<file>.md#<section>`), never
// a file outside it. Every such citation must land: the file exists and has a
// heading whose GitHub anchor is the cited section. Pure reading of the tree.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO } from '../support/in-job-harness.js';

// Code and templates cite `docs/x.md#y` in comments; Markdown links to them as `](docs/x.md#y)` (README) or
// `](x.md#y)` (inside docs/). A bare `docs/…md` in Markdown may be an upstream repository's path, so only links count there.
const CODE = ['src', 'test', 'bench', 'tools', 'templates', 'runner-config', 'eslint.config.js'];
const CODE_CITATION = /\bdocs\/([a-z0-9-]+\.md)(?:#([a-z0-9_-]+))?/g;
const README_LINK = /\]\(docs\/([a-z0-9-]+\.md)(?:#([a-z0-9_-]+))?\)/g;
const DOCS_LINK = /\]\(([a-z0-9-]+\.md)(?:#([a-z0-9_-]+))?\)/g;

function citations(file: string): RegExpMatchArray[] {
  const text = readFileSync(file, 'utf8');
  const rel = relative(REPO, file);
  if (rel === 'README.md') return [...text.matchAll(README_LINK)];
  if (rel.startsWith('docs/')) return [...text.matchAll(DOCS_LINK)];
  return [...text.matchAll(CODE_CITATION)];
}

function files(path: string): string[] {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).flatMap((entry) => (entry === 'node_modules' ? [] : files(join(path, entry))));
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const m = fenced ? null : /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

t.test('heading anchors follow GitHub', async (t) => {
  const a = anchors('# Job payload\n## OTLP/HTTP receiver\n### `as` and job names\n```\n# not a heading\n```\n## Job payload\n');
  t.same([...a], ['job-payload', 'otlphttp-receiver', 'as-and-job-names', 'job-payload-1']);
});

t.test('every docs/…#section cited in code, README and docs/ exists', async (t) => {
  const broken: string[] = [];
  let count = 0;
  for (const file of [...CODE, 'README.md', 'docs'].flatMap((p) => files(join(REPO, p)))) {
    if (!/\.(ts|js|json|ya?ml|md)$/.test(file) || file.endsWith('citations.test.ts')) continue;
    for (const m of citations(file)) {
      count++;
      const [cited, doc, section] = m;
      const target = join(REPO, 'docs', doc!);
      const where = `${relative(REPO, file)}: ${cited}`;
      if (!existsSync(target)) broken.push(`${where} (no such file)`);
      else if (section && !anchors(readFileSync(target, 'utf8')).has(section)) broken.push(`${where} (no such section)`);
    }
  }
  t.ok(count > 0, `citations found (${count})`);
  t.same(broken, [], 'every citation resolves');
});

t.test('no comment cites a document outside the repository', async (t) => {
  const outside: string[] = [];
  for (const file of ['src', 'test', 'bench', 'tools'].flatMap((p) => files(join(REPO, p)))) {
    if (!file.endsWith('.ts')) continue;
    const text = readFileSync(file, 'utf8');
    if (/shared\/facts|facts: [a-z-]+\.md|\/work\//.test(text) && !file.endsWith('citations.test.ts')) outside.push(relative(REPO, file));
  }
  t.same(outside, []);
});
