// `spec:inputs` as GitLab defines them (docs/gitlab-api.md#inputs-and-interpolation): types,
// defaults, options, regex, and how given values are checked against them.
// Shared by the template parser and the catalog.yml model. Pure.
import { isJsonObject as isRecord } from '../../src/json-guards.js';

export const INPUT_TYPES = ['string', 'number', 'boolean', 'array'] as const;
export type InputType = (typeof INPUT_TYPES)[number];

export interface InputSpec {
  readonly type: InputType;
  /** Absent: the input is mandatory. */
  readonly default?: unknown;
  readonly description: string;
  readonly options?: readonly (string | number)[];
  readonly regex?: string;
}

export type InputSpecs = Readonly<Record<string, InputSpec>>;

export type CatalogErrorCode =
  | 'YAML_INVALID'
  | 'TEMPLATE_PATH_INVALID'
  | 'SPEC_INVALID'
  | 'INPUT_INVALID'
  | 'INTERPOLATION_INVALID'
  | 'CATALOG_INVALID'
  | 'README_MARKERS_MISSING';

/** Every catalog/template problem names where it is (`templates/onboard.yml: spec.inputs.as.type`). */
export class CatalogError extends Error {
  constructor(
    readonly code: CatalogErrorCode,
    readonly where: string,
    message: string,
  ) {
    super(`${where}: ${message}`);
    this.name = 'CatalogError';
  }
}

const INPUT_KEYS = new Set(['type', 'default', 'description', 'options', 'regex']);
/** GitLab input names: interpolation accepts word characters and `-`. */
export const INPUT_NAME = /^[A-Za-z0-9_-]+$/;

export { isRecord };

export function typeOfValue(v: unknown): InputType | 'other' {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (Array.isArray(v)) return 'array';
  return 'other';
}

/**
 * Parses one `inputs:` map. Stricter than GitLab on purpose: we require an
 * explicit `type` and a `description` for every input (catalog pages render
 * them, and the README is generated from them).
 */
export function parseInputSpecs(raw: unknown, where: string): InputSpecs {
  if (raw === undefined || raw === null) return {};
  if (!isRecord(raw)) throw new CatalogError('SPEC_INVALID', where, 'must be a map of input names');
  const out: Record<string, InputSpec> = {};
  for (const [name, def] of Object.entries(raw)) {
    const at = `${where}.${name}`;
    if (!INPUT_NAME.test(name)) throw new CatalogError('SPEC_INVALID', at, 'input names use letters, digits, _ and - only');
    if (!isRecord(def)) throw new CatalogError('SPEC_INVALID', at, 'must be a map (type, default, description, …)');
    for (const key of Object.keys(def)) {
      if (!INPUT_KEYS.has(key)) throw new CatalogError('SPEC_INVALID', `${at}.${key}`, 'unknown input keyword');
    }
    const type = def.type;
    if (typeof type !== 'string' || !(INPUT_TYPES as readonly string[]).includes(type)) {
      throw new CatalogError('SPEC_INVALID', `${at}.type`, `must be one of ${INPUT_TYPES.join(', ')}`);
    }
    const description = def.description;
    if (typeof description !== 'string' || description.trim() === '') {
      throw new CatalogError('SPEC_INVALID', `${at}.description`, 'every input needs a description');
    }
    const spec: { -readonly [K in keyof InputSpec]: InputSpec[K] } = { type: type as InputType, description: description.trim() };
    if (def.options !== undefined) {
      if (type !== 'string' && type !== 'number')
        throw new CatalogError('SPEC_INVALID', `${at}.options`, 'only string and number inputs take options');
      if (!Array.isArray(def.options) || def.options.length === 0 || def.options.length > 50) {
        throw new CatalogError('SPEC_INVALID', `${at}.options`, 'must be a list of 1 to 50 values');
      }
      spec.options = def.options as (string | number)[];
    }
    if (def.regex !== undefined) {
      if (type !== 'string') throw new CatalogError('SPEC_INVALID', `${at}.regex`, 'only string inputs take a regex');
      if (typeof def.regex !== 'string') throw new CatalogError('SPEC_INVALID', `${at}.regex`, 'must be a string (without /…/)');
      try {
        new RegExp(def.regex);
      } catch {
        throw new CatalogError('SPEC_INVALID', `${at}.regex`, 'does not compile');
      }
      spec.regex = def.regex;
    }
    if ('default' in def) {
      spec.default = def.default;
      checkValue(spec, def.default, `${at}.default`);
    }
    out[name] = spec;
  }
  return out;
}

/** Throws INPUT_INVALID when `value` is not acceptable for `spec`. */
export function checkValue(spec: InputSpec, value: unknown, where: string): void {
  // `default: ''` is GitLab's way to say "optional, empty".
  if (spec.type === 'string' && value === '') return;
  const actual = typeOfValue(value);
  if (actual !== spec.type) throw new CatalogError('INPUT_INVALID', where, `expected a ${spec.type}, got ${actual}`);
  if (spec.options && !spec.options.includes(value as string | number)) {
    throw new CatalogError('INPUT_INVALID', where, `must be one of ${spec.options.join(', ')}`);
  }
  // GitLab uses RE2; our patterns stay in the subset both engines read the same way.
  if (spec.regex && !new RegExp(spec.regex).test(value as string)) {
    throw new CatalogError('INPUT_INVALID', where, `does not match ${spec.regex}`);
  }
}

/** The values a component sees: given inputs checked, defaults filled in, unknown or missing ones refused. */
export function resolveInputs(specs: InputSpecs, given: Readonly<Record<string, unknown>>, where: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(given)) {
    if (!(name in specs)) throw new CatalogError('INPUT_INVALID', `${where}.${name}`, 'unknown input');
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (name in given) {
      checkValue(spec, given[name], `${where}.${name}`);
      out[name] = given[name];
    } else if ('default' in spec) {
      out[name] = spec.default;
    } else {
      throw new CatalogError('INPUT_INVALID', `${where}.${name}`, 'required input not given');
    }
  }
  return out;
}
