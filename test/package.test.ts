// The package as npm sees it: engines, one copy of the OTel SDK core, the bin.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import semver from 'semver';
import { VERSION } from '../src/version.js';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  version: string;
  engines: { node: string };
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};

t.test('engines admit Node 20.19+, 22 and 24', async (t) => {
  for (const v of ['20.19.0', '20.20.2', '22.12.0', '22.20.0', '24.0.0', '24.9.1'])
    t.ok(semver.satisfies(v, pkg.engines.node), `${v} admitted`);
  for (const v of ['18.20.0', '20.18.0', '21.7.0']) t.notOk(semver.satisfies(v, pkg.engines.node), `${v} refused`);
});

t.test('exactly one copy of each @opentelemetry package (core keeps its global error handler module-scoped)', async (t) => {
  const out = execFileSync('npm', ['ls', '--all', '--json'], { timeout: 60_000, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const versions = new Map<string, Set<string>>();
  type Deps = Record<string, { version?: string; dependencies?: Deps }>;
  const walk = (deps: Deps | undefined): void => {
    for (const [name, d] of Object.entries(deps ?? {})) {
      if (name.startsWith('@opentelemetry/') && d.version) versions.set(name, (versions.get(name) ?? new Set()).add(d.version));
      walk(d.dependencies);
    }
  };
  walk((JSON.parse(out) as { dependencies?: Deps }).dependencies);
  t.ok(versions.has('@opentelemetry/core') && versions.has('@opentelemetry/sdk-metrics'), 'the tree holds the trace and metrics SDKs');
  for (const [name, set] of versions) t.equal(set.size, 1, `${name}: one version (${[...set].join(', ')})`);
  t.same([...(versions.get('@opentelemetry/core') ?? [])], [pkg.dependencies['@opentelemetry/core']], 'core is the pinned version');
});

t.test('the bin is the built CLI and the versions agree', async (t) => {
  t.same(pkg.bin, { 'gitlab-otel': 'dist/cli.js' });
  t.equal(VERSION, pkg.version);
  t.ok(existsSync('dist/cli.js'), 'npm ci built dist/ (prepare)');
  // The build sets it (tools/assets.ts): a rebuild must not leave an existing npx link pointing at a 0644 file.
  t.equal(statSync('dist/cli.js').mode & 0o111, 0o111, 'dist/cli.js is executable');
  t.match(readFileSync('src/cli.ts', 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the CLI has a node shebang');
});

t.test('LICENSE is the MIT text package.json declares, for the catalog page and npm', async (t) => {
  const license = (JSON.parse(readFileSync('package.json', 'utf8')) as { license: string }).license;
  t.equal(license, 'MIT');
  const text = readFileSync('LICENSE', 'utf8');
  t.match(text, /^MIT License\n\nCopyright \(c\) 2026 gitlab-otel contributors\n/);
  t.match(text, /THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND/);
});
