// A CI/CD catalog component as GitLab reads it (docs/gitlab-api.md#ci-catalog):
// `templates/<name>.yml` or `templates/<name>/template.yml`, a `spec:` document,
// `---`, then the jobs; `$[[ inputs.x ]]` interpolation; and the job keywords
// GitLab's config validator accepts. Pure: text in, data or CatalogError out.
import { parseAllDocuments } from 'yaml';
import { CatalogError, isRecord, parseInputSpecs, type InputSpecs } from './inputs.js';

/** gitlab-org/gitlab `Ci::Catalog::ComponentsProject::TEMPLATE_PATH_REGEX`. */
export const TEMPLATE_PATH = /^templates\/([\w-]+)(?:\/template)?\.yml$/;

/** `spec:component` context fields (GitLab 18.6+). */
export const COMPONENT_CONTEXT = ['name', 'sha', 'version', 'reference'] as const;

/**
 * Keys a job may have: `Entry::Job::ALLOWED_KEYS` + `Entry::Processable::PROCESSABLE_ALLOWED_KEYS`
 * in gitlab-org/gitlab `lib/gitlab/ci/config/entry/{job,processable}.rb`, plus the EE job keys.
 * (`only`/`except` are accepted by GitLab but deprecated; we refuse them in our templates.)
 */
export const JOB_KEYWORDS: ReadonlySet<string> = new Set([
  'tags',
  'script',
  'image',
  'services',
  'start_in',
  'artifacts',
  'cache',
  'dependencies',
  'before_script',
  'after_script',
  'hooks',
  'coverage',
  'retry',
  'parallel',
  'timeout',
  'release',
  'id_tokens',
  'publish',
  'pages',
  'manual_confirmation',
  'run',
  'extends',
  'stage',
  'rules',
  'variables',
  'inherit',
  'allow_failure',
  'when',
  'needs',
  'resource_group',
  'environment',
  'interruptible',
  'secrets',
  'dast_configuration',
  'identity',
]);

/** `rules:` entry keys (Processable `rules` metadata `allowed_keys`). */
export const RULE_KEYWORDS: ReadonlySet<string> = new Set([
  'if',
  'changes',
  'exists',
  'when',
  'start_in',
  'allow_failure',
  'variables',
  'needs',
  'interruptible',
]);
export const RULE_WHEN: ReadonlySet<string> = new Set(['on_success', 'on_failure', 'always', 'never', 'manual', 'delayed']);
export const JOB_WHEN: ReadonlySet<string> = new Set(['on_success', 'on_failure', 'always', 'manual', 'delayed']);

/** Top-level keys that are not jobs. GitLab's advice: components must not set them (they change the whole pipeline). */
export const GLOBAL_KEYWORDS: ReadonlySet<string> = new Set([
  'default',
  'include',
  'stages',
  'variables',
  'workflow',
  'spec',
  // Pre-`default:` global forms, still read as globals by GitLab.
  'image',
  'services',
  'cache',
  'before_script',
  'after_script',
  'types',
]);

export interface ComponentSpec {
  readonly inputs: InputSpecs;
  readonly component: readonly string[];
}

export interface ComponentTemplate {
  readonly name: string;
  /** Repository-relative path, e.g. `templates/onboard.yml`. */
  readonly path: string;
  readonly spec: ComponentSpec;
  /** The second document, before interpolation. */
  readonly body: unknown;
}

export function componentName(path: string): string | undefined {
  return TEMPLATE_PATH.exec(path)?.[1];
}

export function parseComponentTemplate(text: string, path: string): ComponentTemplate {
  const name = componentName(path);
  if (!name)
    throw new CatalogError('TEMPLATE_PATH_INVALID', path, 'not a component path (templates/<name>.yml or templates/<name>/template.yml)');
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new CatalogError('YAML_INVALID', path, 'no YAML documents');
  for (const d of docs) {
    if (d.errors.length > 0) throw new CatalogError('YAML_INVALID', path, d.errors[0]!.message);
  }
  if (docs.length !== 2)
    throw new CatalogError('SPEC_INVALID', path, `expected a spec: document, ---, then the jobs (found ${docs.length} document(s))`);
  const header = docs[0]!.toJS() as unknown;
  if (!isRecord(header) || Object.keys(header).length !== 1 || !isRecord(header.spec)) {
    throw new CatalogError('SPEC_INVALID', `${path}: spec`, 'the first document must hold only `spec:`');
  }
  for (const key of Object.keys(header.spec)) {
    // spec:include (external input files) is not allowed in components.
    if (key !== 'inputs' && key !== 'component')
      throw new CatalogError('SPEC_INVALID', `${path}: spec.${key}`, 'not allowed in a component');
  }
  const component = header.spec.component ?? [];
  if (!Array.isArray(component) || component.some((c) => !(COMPONENT_CONTEXT as readonly unknown[]).includes(c))) {
    throw new CatalogError('SPEC_INVALID', `${path}: spec.component`, `must list fields from ${COMPONENT_CONTEXT.join(', ')}`);
  }
  const inputs = parseInputSpecs(header.spec.inputs, `${path}: spec.inputs`);
  return { name, path, spec: { inputs, component: component as string[] }, body: docs[1]!.toJS() as unknown };
}

const BLOCK = /\$\[\[\s*([^\]]*?)\s*\]\]/g;
const WHOLE = /^\s*\$\[\[\s*([^\]]*?)\s*\]\]\s*$/;

export interface InterpolationContext {
  readonly inputs: Readonly<Record<string, unknown>>;
  /** `$[[ component.x ]]` values; only fields listed in spec:component may be used. */
  readonly component?: Readonly<Record<string, string | null>>;
  readonly where: string;
  /** Input names seen, for "declared but never used" checks. */
  readonly used?: Set<string>;
}

function lookup(expr: string, ctx: InterpolationContext): unknown {
  if (expr.includes('|'))
    throw new CatalogError('INTERPOLATION_INVALID', ctx.where, `functions are not used in our templates: $[[ ${expr} ]]`);
  const m = /^(inputs|component)\.([\w-]+)$/.exec(expr);
  if (!m) throw new CatalogError('INTERPOLATION_INVALID', ctx.where, `unknown interpolation $[[ ${expr} ]]`);
  const [, scope, key] = m as unknown as [string, string, string];
  if (scope === 'inputs') {
    if (!(key in ctx.inputs)) throw new CatalogError('INTERPOLATION_INVALID', ctx.where, `unknown input $[[ inputs.${key} ]]`);
    ctx.used?.add(key);
    return ctx.inputs[key];
  }
  if (!ctx.component || !(key in ctx.component)) {
    throw new CatalogError('INTERPOLATION_INVALID', ctx.where, `$[[ component.${key} ]] needs spec:component: [${key}]`);
  }
  return ctx.component[key];
}

function interpolateString(s: string, ctx: InterpolationContext): unknown {
  const whole = WHOLE.exec(s);
  // An interpolation that is the whole value keeps the input's type; inside a larger string it is text.
  if (whole) return lookup(whole[1]!, ctx);
  return s.replace(BLOCK, (_m, expr: string) => {
    const v = lookup(expr, ctx);
    return typeof v === 'string' ? v : JSON.stringify(v);
  });
}

/** `$[[ … ]]` in keys and values, as GitLab does when it fetches a component. */
export function interpolate(node: unknown, ctx: InterpolationContext): unknown {
  if (typeof node === 'string') return interpolateString(node, ctx);
  if (Array.isArray(node)) return node.map((n) => interpolate(n, ctx));
  if (isRecord(node)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      const key = interpolateString(k, ctx);
      if (typeof key !== 'string') throw new CatalogError('INTERPOLATION_INVALID', ctx.where, `key ${k} must interpolate to a string`);
      out[key] = interpolate(v, ctx);
    }
    return out;
  }
  return node;
}

export interface ConfigProblem {
  /** Key path, e.g. `gitlab-otel-onboard.rules[0].when`. */
  readonly path: string;
  readonly message: string;
}

function validateRules(rules: unknown, at: string, problems: ConfigProblem[]): void {
  if (!Array.isArray(rules)) {
    problems.push({ path: at, message: 'rules must be an array' });
    return;
  }
  rules.forEach((rule, i) => {
    const rat = `${at}[${i}]`;
    if (!isRecord(rule)) {
      problems.push({ path: rat, message: 'each rule must be a map' });
      return;
    }
    for (const key of Object.keys(rule))
      if (!RULE_KEYWORDS.has(key)) problems.push({ path: `${rat}.${key}`, message: 'not a rules keyword' });
    if (rule.when !== undefined && (typeof rule.when !== 'string' || !RULE_WHEN.has(rule.when)))
      problems.push({ path: `${rat}.when`, message: `unknown when: ${JSON.stringify(rule.when)}` });
    if (rule.if !== undefined && typeof rule.if !== 'string') problems.push({ path: `${rat}.if`, message: 'must be a string expression' });
  });
}

function validateScriptList(v: unknown, at: string, problems: ConfigProblem[]): void {
  const ok =
    typeof v === 'string' ||
    (Array.isArray(v) &&
      v.length > 0 &&
      v.every((l) => typeof l === 'string' || (Array.isArray(l) && l.every((x) => typeof x === 'string'))));
  if (!ok) problems.push({ path: at, message: 'must be a string or a non-empty list of strings' });
}

function validateJob(name: string, job: unknown, problems: ConfigProblem[]): void {
  if (!isRecord(job)) {
    problems.push({ path: name, message: 'a job must be a map' });
    return;
  }
  const hidden = name.startsWith('.');
  if (name.length > 255) problems.push({ path: name, message: 'job names are at most 255 characters' });
  for (const key of Object.keys(job)) if (!JOB_KEYWORDS.has(key)) problems.push({ path: `${name}.${key}`, message: 'not a job keyword' });
  if (!hidden && job.script === undefined && job.run === undefined && job.extends === undefined && job.trigger === undefined) {
    problems.push({ path: `${name}.script`, message: 'a job needs script (or extends a job that has one)' });
  }
  for (const key of ['script', 'before_script', 'after_script'] as const)
    if (job[key] !== undefined) validateScriptList(job[key], `${name}.${key}`, problems);
  if (job.stage !== undefined && typeof job.stage !== 'string') problems.push({ path: `${name}.stage`, message: 'must be a string' });
  if (job.rules !== undefined) validateRules(job.rules, `${name}.rules`, problems);
  if (job.when !== undefined && (typeof job.when !== 'string' || !JOB_WHEN.has(job.when)))
    problems.push({ path: `${name}.when`, message: `unknown when: ${JSON.stringify(job.when)}` });
  if (job.allow_failure !== undefined && typeof job.allow_failure !== 'boolean' && !isRecord(job.allow_failure)) {
    problems.push({ path: `${name}.allow_failure`, message: 'must be a boolean or exit_codes map' });
  }
  if (
    job.extends !== undefined &&
    typeof job.extends !== 'string' &&
    !(Array.isArray(job.extends) && job.extends.every((e) => typeof e === 'string'))
  ) {
    problems.push({ path: `${name}.extends`, message: 'must be a job name or a list of them' });
  }
  if (job.variables !== undefined) {
    if (!isRecord(job.variables)) problems.push({ path: `${name}.variables`, message: 'must be a map' });
    else
      for (const [k, v] of Object.entries(job.variables)) {
        const okValue = typeof v === 'string' || typeof v === 'number' || (isRecord(v) && typeof v.value === 'string');
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) problems.push({ path: `${name}.variables.${k}`, message: 'not a variable name' });
        if (!okValue) problems.push({ path: `${name}.variables.${k}`, message: 'variable values must be strings' });
      }
  }
  if (job.id_tokens !== undefined) {
    if (!isRecord(job.id_tokens)) problems.push({ path: `${name}.id_tokens`, message: 'must be a map' });
    else
      for (const [k, v] of Object.entries(job.id_tokens)) {
        const aud = isRecord(v) ? v.aud : undefined;
        const okAud =
          typeof aud === 'string' ? aud !== '' : Array.isArray(aud) && aud.length > 0 && aud.every((a) => typeof a === 'string');
        if (!isRecord(v) || !okAud || Object.keys(v).some((x) => x !== 'aud')) {
          problems.push({ path: `${name}.id_tokens.${k}`, message: 'needs only aud: a non-empty string or list of strings' });
        }
      }
  }
  if (job.image !== undefined) {
    const img = job.image;
    const ok = (typeof img === 'string' && img !== '') || (isRecord(img) && typeof img.name === 'string' && img.name !== '');
    if (!ok) problems.push({ path: `${name}.image`, message: 'must be an image name or {name, entrypoint, …}' });
  }
  if (job.needs !== undefined && !Array.isArray(job.needs)) problems.push({ path: `${name}.needs`, message: 'must be a list' });
}

/** Checks an (interpolated) component body: no global keywords, only known job keywords, well-formed rules. */
export function validateComponentJobs(config: unknown): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (!isRecord(config)) return [{ path: '', message: 'the jobs document must be a map of job names' }];
  for (const [name, job] of Object.entries(config)) {
    if (GLOBAL_KEYWORDS.has(name)) {
      problems.push({ path: name, message: 'global keyword in a component (GitLab advises against: it changes the whole pipeline)' });
      continue;
    }
    validateJob(name, job, problems);
  }
  // extends must name a job defined here (a component cannot rely on the includer's jobs).
  for (const [name, job] of Object.entries(config)) {
    if (!isRecord(job) || job.extends === undefined) continue;
    const targets = Array.isArray(job.extends) ? job.extends : [job.extends];
    for (const t of targets)
      if (typeof t === 'string' && !(t in config)) problems.push({ path: `${name}.extends`, message: `extends unknown job ${t}` });
  }
  return problems;
}

/** Jobs a pipeline would get, hidden templates resolved: `extends` merged as GitLab does (deep-merge maps, replace the rest). */
export function resolveExtends(config: Record<string, unknown>, name: string, seen: string[] = []): Record<string, unknown> {
  const job = config[name];
  if (!isRecord(job)) return {};
  if (seen.includes(name)) throw new CatalogError('INTERPOLATION_INVALID', name, `circular extends: ${[...seen, name].join(' -> ')}`);
  const parents = job.extends === undefined ? [] : Array.isArray(job.extends) ? job.extends : [job.extends];
  let merged: Record<string, unknown> = {};
  for (const p of parents) merged = deepMerge(merged, resolveExtends(config, String(p), [...seen, name]));
  const own = { ...job };
  delete own.extends;
  return deepMerge(merged, own);
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isRecord(prev) && isRecord(v) ? deepMerge(prev, v) : v;
  }
  return out;
}
