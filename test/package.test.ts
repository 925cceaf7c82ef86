// The package as npm sees it: engines, one copy of the OTel SDK core, the bin.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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

t.test('exactly one copy of @opentelemetry/core (its global error handler is module-scoped)', async (t) => {
  const out = execFileSync('npm', ['ls', '@opentelemetry/core', '--all', '--json'], { timeout: 60_000, encoding: 'utf8' });
  const versions = new Set<string>();
  const walk = (deps: Record<string, { version?: string; dependencies?: Record<string, unknown> }> | undefined): void => {
    for (const [name, d] of Object.entries(deps ?? {})) {
      if (name === '@opentelemetry/core' && d.version) versions.add(d.version);
      walk(d.dependencies as typeof deps);
    }
  };
  walk((JSON.parse(out) as { dependencies?: Record<string, { version?: string }> }).dependencies);
  t.same([...versions], ['2.12.1']);
});

t.test('the bin is the built CLI and the versions agree', async (t) => {
  t.same(pkg.bin, { 'gitlab-otel': 'dist/cli.js' });
  t.equal(VERSION, pkg.version);
  t.ok(existsSync('dist/cli.js'), 'npm ci built dist/ (prepare)');
  t.match(readFileSync('src/cli.ts', 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the CLI has a node shebang');
});
