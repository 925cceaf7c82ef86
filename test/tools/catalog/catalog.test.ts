import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { catalogDrift, parseCatalog, type Catalog } from '../../../tools/catalog/catalog.js';
import { loadTemplates } from '../../../tools/catalog/docs.js';
import { validateComponentJobs, GLOBAL_KEYWORDS } from '../../../tools/catalog/component-template.js';
import { isRecord, resolveInputs } from '../../../tools/catalog/inputs.js';
import {
  BEGIN_MARKER,
  COMPONENTS_DOC,
  END_MARKER,
  extractComponentsSection,
  renderComponentsDoc,
  renderComponentsSection,
  spliceComponentsSection,
} from '../../../tools/catalog/readme.js';
import { REPO } from '../../support/in-job-harness.js';

const catalogText = readFileSync(join(REPO, 'catalog.yml'), 'utf8');
const catalog = parseCatalog(catalogText);
const templates = loadTemplates(REPO);
const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

t.test('catalog.yml and templates/ agree, component by component and input by input', async (t) => {
  t.same(catalogDrift(catalog, templates), []);
});

t.test('drift is reported, naming the component and the input', async (t) => {
  const changed = (edit: (c: Catalog) => Catalog): string[] => catalogDrift(edit(catalog), templates);
  const onboard = catalog.components.find((c) => c.name === 'onboard')!;
  const withInputs = (inputs: typeof onboard.inputs): Catalog => ({
    ...catalog,
    components: catalog.components.map((c) => (c.name === 'onboard' ? { ...c, inputs } : c)),
  });
  t.match(
    changed(() => withInputs({ ...onboard.inputs, concurrency: { ...onboard.inputs.concurrency!, default: 8 } })),
    [/onboard: input concurrency differs/],
  );
  t.match(
    changed(() => withInputs({ ...onboard.inputs, as: { ...onboard.inputs.as!, description: 'other' } })),
    [/onboard: input as differs/],
  );
  t.match(
    changed(() => withInputs({ ...onboard.inputs, extra: { type: 'string', description: 'x', default: '' } })),
    [/input extra differs: catalog.yml .* vs templates\/onboard.yml absent/],
  );
  const { dry_run: _dropped, ...fewer } = onboard.inputs;
  t.match(
    changed(() => withInputs(fewer)),
    [/input dry_run differs: catalog.yml absent/],
  );
  t.match(
    changed((c) => ({ ...c, components: c.components.filter((x) => x.name !== 'job-telemetry') })),
    [/templates\/job-telemetry.yml is not listed/],
  );
  t.match(
    changed((c) => ({ ...c, components: [...c.components, { ...onboard, name: 'ghost' }] })),
    [/lists component ghost, but templates\/ has no ghost/],
  );
});

t.test('catalog.yml is validated at the boundary, errors name the key', async (t) => {
  t.throws(
    () =>
      parseCatalog(
        'project: p\nsummary: s\ncomponents: {a: {description: d, usage: [{title: t, yaml: y}], inputs: {x: {type: text, description: d}}}}',
      ),
    {
      code: 'SPEC_INVALID',
      message: /components\.a\.inputs\.x\.type/,
    },
  );
  t.throws(() => parseCatalog('project: p\nsummary: s\ncomponents: {a: {description: d, usage: []}}'), {
    code: 'CATALOG_INVALID',
    message: /components\.a\.usage/,
  });
  t.throws(() => parseCatalog('project: p\nsummary: s\ncomponents: {a: {description: d, usage: [{title: t, yaml: y}], colour: red}}'), {
    code: 'CATALOG_INVALID',
    message: /components\.a\.colour/,
  });
  t.throws(() => parseCatalog('project: [unclosed'), { code: 'YAML_INVALID' });
});

t.test("README's CI/CD components section is exactly what catalog.yml generates", async (t) => {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const section = extractComponentsSection(readme);
  t.ok(section, 'README has the generated block (run npm run docs)');
  t.equal(section, renderComponentsSection(catalog), 'README matches catalog.yml (run npm run docs)');
  t.equal(spliceComponentsSection(readme, renderComponentsSection(catalog)), readme, 'regenerating changes nothing');
  const heading = readme.indexOf('## CI/CD components');
  t.ok(heading !== -1 && heading < readme.indexOf(BEGIN_MARKER), 'the block sits under its heading');

  const edited: Catalog = { ...catalog, components: catalog.components.map((c) => ({ ...c, description: `${c.description} (changed)` })) };
  t.not(renderComponentsSection(edited), section, 'a catalog.yml change makes README stale, so this test fails until npm run docs');
  const fresh = spliceComponentsSection('# x\n\n## CI/CD components\n\n## Development\n', renderComponentsSection(catalog));
  t.match(
    fresh,
    new RegExp(
      `## CI/CD components\\n\\n${BEGIN_MARKER.replace(/[.*+?^${}()|[\]\\`]/g, '\\$&')}[\\s\\S]*${END_MARKER}\\n\\n## Development`,
    ),
  );
  t.throws(() => spliceComponentsSection('# no heading\n', 'x'), { code: 'README_MARKERS_MISSING' });
  // The catalog page shows README and renders the inputs itself (docs/gitlab-api.md#readme):
  // README says what each component does with one include example, and repeats no input table.
  t.notMatch(section, '| Input |', 'no input table in README');
  for (const c of catalog.components) {
    t.match(section, `### ${c.name}`);
    t.equal(section!.split(`component: $CI_SERVER_FQDN/${catalog.project}/${c.name}@`).length - 1, 1, `${c.name}: one include example`);
    t.match(section, `](${COMPONENTS_DOC}#${c.name})`, `${c.name}: links to its full documentation`);
  }
  t.ok(readme.indexOf(BEGIN_MARKER) < readme.indexOf('## Two commands'), 'the components come first: the catalog page opens with them');
});

t.test(`${COMPONENTS_DOC} is exactly what catalog.yml generates, every example and input included`, async (t) => {
  const doc = readFileSync(join(REPO, COMPONENTS_DOC), 'utf8');
  t.equal(doc, renderComponentsDoc(catalog), `${COMPONENTS_DOC} matches catalog.yml (run npm run docs)`);
  for (const c of catalog.components) {
    t.match(doc, `## ${c.name}`);
    for (const u of c.usage) t.match(doc, u.yaml.trimEnd(), `${c.name}: example "${u.title}"`);
    for (const name of Object.keys(c.inputs)) t.match(doc, `| \`${name}\` |`);
  }
});

t.test('usage examples include a released version and pass inputs the component accepts', async (t) => {
  for (const c of catalog.components) {
    const tpl = templates.find((x) => x.name === c.name)!;
    for (const u of c.usage) {
      const doc = parse(u.yaml) as Record<string, unknown>;
      const include = doc.include as { component: string; inputs?: Record<string, unknown> }[];
      t.ok(Array.isArray(include) && include.length > 0, `${c.name}: "${u.title}" includes something`);
      const mine = include.find((i) => i.component.includes(`/${c.name}@`))!;
      t.equal(mine.component, `$CI_SERVER_FQDN/${catalog.project}/${c.name}@${version}`, 'pinned to the package version');
      t.doesNotThrow(
        () => resolveInputs(tpl.spec.inputs, mine.inputs ?? {}, `${c.name} usage`),
        `${c.name}: "${u.title}" inputs are valid`,
      );
      const jobs = Object.fromEntries(Object.entries(doc).filter(([k]) => !GLOBAL_KEYWORDS.has(k)));
      // The component's hidden jobs stand in for what the include brings.
      const problems = validateComponentJobs({ ...jobs, '.gitlab-otel-job': {}, '.gitlab-otel-span': {} });
      t.same(problems, [], `${c.name}: "${u.title}" jobs are valid`);
    }
  }
  for (const tpl of templates) {
    const image = tpl.spec.inputs.image?.default as string;
    t.match(image, new RegExp(`:${version.replace(/\./g, '\\.')}$`), `${tpl.name}: the default image is this release's`);
  }
});

t.test('.gitlab-ci.yml: tests, a self-test of every component at this commit, a release on semver tags', async (t) => {
  const ci = parse(readFileSync(join(REPO, '.gitlab-ci.yml'), 'utf8')) as Record<string, unknown>;
  const include = ci.include as { component: string; inputs?: Record<string, unknown> }[];
  for (const c of catalog.components) {
    const entry = include.find((i) => i.component === `$CI_SERVER_FQDN/$CI_PROJECT_PATH/${c.name}@$CI_COMMIT_SHA`);
    t.ok(entry, `self-test includes ${c.name} at $CI_COMMIT_SHA`);
    const tpl = templates.find((x) => x.name === c.name)!;
    t.doesNotThrow(() => resolveInputs(tpl.spec.inputs, entry?.inputs ?? {}, `.gitlab-ci.yml ${c.name}`));
    t.ok((ci.stages as string[]).includes(String(entry?.inputs?.stage)), `${c.name} self-test runs in a declared stage`);
  }
  const jobs = Object.fromEntries(Object.entries(ci).filter(([k]) => !GLOBAL_KEYWORDS.has(k)));
  t.same(validateComponentJobs(jobs), [], 'every job uses GitLab job keywords only');
  const release = ci.release as Record<string, unknown>;
  t.ok(isRecord(release.release), 'the release job uses the release: keyword (catalog versions need it)');
  t.match(release, { image: /gitlab-org\/cli/, release: { tag_name: '$CI_COMMIT_TAG' } });
  const rule = (release.rules as { if: string }[])[0]!.if;
  const pattern = new RegExp(rule.replace(/^\$CI_COMMIT_TAG =~ \/(.*)\/$/, '$1'));
  t.ok(pattern.test('1.2.3') && pattern.test('1.0.0-rc.1'), 'semver tags release');
  t.notOk(pattern.test('v1.2') || pattern.test('latest'), 'other tags do not');
  t.match((ci.test as { script: string[] }).script.join('\n'), /npm test[\s\S]*npm run docs -- --check/);
});
