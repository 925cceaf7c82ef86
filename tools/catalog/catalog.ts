// `catalog.yml`: our manifest of the components in templates/. GitLab has no
// such file (it reads each template's spec: header); ours exists so README's
// component section can be generated and a test can hold catalog.yml,
// templates/ and README to one truth. Pure.
import { parse } from 'yaml';
import { CatalogError, isRecord, parseInputSpecs, type InputSpec, type InputSpecs } from './inputs.js';
import type { ComponentTemplate } from './component-template.js';

export interface UsageExample {
  readonly title: string;
  /** A `.gitlab-ci.yml` fragment that includes the component. */
  readonly yaml: string;
}

export interface CatalogComponent {
  readonly name: string;
  readonly description: string;
  readonly inputs: InputSpecs;
  readonly usage: readonly UsageExample[];
}

export interface Catalog {
  /** Project path the usage examples include from, e.g. `gitlab-otel/gitlab-otel`. */
  readonly project: string;
  readonly summary: string;
  readonly components: readonly CatalogComponent[];
}

function text(v: unknown, where: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw new CatalogError('CATALOG_INVALID', where, 'must be a non-empty string');
  return v.trim();
}

export function parseCatalog(source: string, file = 'catalog.yml'): Catalog {
  let raw: unknown;
  try {
    raw = parse(source);
  } catch (err) {
    throw new CatalogError('YAML_INVALID', file, (err as Error).message);
  }
  if (!isRecord(raw)) throw new CatalogError('CATALOG_INVALID', file, 'must be a map');
  for (const key of Object.keys(raw)) {
    if (!['project', 'summary', 'components'].includes(key)) throw new CatalogError('CATALOG_INVALID', `${file}: ${key}`, 'unknown key');
  }
  if (!isRecord(raw.components)) throw new CatalogError('CATALOG_INVALID', `${file}: components`, 'must be a map of component names');
  const components: CatalogComponent[] = [];
  for (const [name, c] of Object.entries(raw.components)) {
    const at = `${file}: components.${name}`;
    if (!/^[\w-]+$/.test(name)) throw new CatalogError('CATALOG_INVALID', at, 'component names use letters, digits, _ and - only');
    if (!isRecord(c)) throw new CatalogError('CATALOG_INVALID', at, 'must be a map');
    for (const key of Object.keys(c)) {
      if (!['description', 'inputs', 'usage'].includes(key)) throw new CatalogError('CATALOG_INVALID', `${at}.${key}`, 'unknown key');
    }
    if (!Array.isArray(c.usage) || c.usage.length === 0)
      throw new CatalogError('CATALOG_INVALID', `${at}.usage`, 'at least one usage example');
    const usage = c.usage.map((u, i) => {
      if (!isRecord(u)) throw new CatalogError('CATALOG_INVALID', `${at}.usage[${i}]`, 'must be {title, yaml}');
      return { title: text(u.title, `${at}.usage[${i}].title`), yaml: text(u.yaml, `${at}.usage[${i}].yaml`) + '\n' };
    });
    components.push({
      name,
      description: text(c.description, `${at}.description`),
      inputs: parseInputSpecs(c.inputs, `${at}.inputs`),
      usage,
    });
  }
  return { project: text(raw.project, `${file}: project`), summary: text(raw.summary, `${file}: summary`), components };
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function describeInput(s: InputSpec | undefined): string {
  return s === undefined ? 'absent' : JSON.stringify(s);
}

/**
 * Every way catalog.yml and the templates disagree, one line each; empty when
 * they agree. Components must match one to one, inputs field by field.
 */
export function catalogDrift(catalog: Catalog, templates: readonly ComponentTemplate[]): string[] {
  const out: string[] = [];
  const byName = new Map(templates.map((t) => [t.name, t]));
  for (const c of catalog.components) {
    const t = byName.get(c.name);
    if (!t) {
      out.push(`catalog.yml lists component ${c.name}, but templates/ has no ${c.name}.yml or ${c.name}/template.yml`);
      continue;
    }
    const names = new Set([...Object.keys(c.inputs), ...Object.keys(t.spec.inputs)]);
    for (const n of names) {
      const a = c.inputs[n];
      const b = t.spec.inputs[n];
      if (!a || !b || !sameValue(a, b))
        out.push(`${c.name}: input ${n} differs: catalog.yml ${describeInput(a)} vs ${t.path} ${describeInput(b)}`);
    }
  }
  for (const t of templates) {
    if (!catalog.components.some((c) => c.name === t.name)) out.push(`${t.path} is not listed in catalog.yml`);
  }
  return out;
}
