// The component image, outside Docker: the Dockerfile's install step
// (component/install.sh) run for real into a temp prefix, then the image's
// entry script driven the way `docker run` and GitLab's executors drive it.
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jobEnv, REPO, runProcess } from '../../support/in-job-harness.js';

const dockerfile = readFileSync(join(REPO, 'component', 'Dockerfile'), 'utf8');

t.test('Dockerfile: official Node LTS >= 22, production install via install.sh, non-root, gitlab-otel entry', async (t) => {
  const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!);
  t.ok(froms.length > 0);
  for (const image of froms) {
    // Pinned by digest (docs/security.md#deployment).
    const m = /^node:(\d+)[-.\w]*@sha256:[0-9a-f]{64}$/.exec(image);
    t.ok(m && Number(m[1]) >= 22 && Number(m[1]) % 2 === 0, `${image} is an official even-numbered (LTS) Node image >= 22`);
  }
  t.match(dockerfile, /RUN sh \/tmp\/component\/install\.sh \/tmp\/pkg \/opt\/gitlab-otel \/usr\/local\/bin/);
  const user = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].at(-1)?.[1];
  t.ok(user && user !== 'root' && user !== '0', 'runs as a non-root user');
  t.match(dockerfile, /^ENTRYPOINT \["gitlab-otel-entrypoint"\]$/m);
});

t.test('install.sh installs production dependencies only and links the binaries', async (t) => {
  if (!existsSync(join(REPO, 'dist', 'cli.js'))) {
    const build = await runProcess('npm', ['run', 'build'], jobEnv({ npm_config_update_notifier: 'false' }), 240_000);
    t.equal(build.code, 0, 'npm run build');
  }
  const root = mkdtempSync(join(tmpdir(), 'component-image-'));
  const dest = join(root, 'opt', 'gitlab-otel');
  const bin = join(root, 'bin');
  // The npm cache from this checkout's own install serves the packages; the registry is used only for a miss.
  const install = await runProcess(
    'sh',
    [join(REPO, 'component', 'install.sh'), REPO, dest, bin],
    jobEnv({ npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' }),
    300_000,
  );
  if (install.code !== 0 && /ENOTFOUND|EAI_AGAIN|ENETUNREACH|ECONNREFUSED/.test(install.stderr)) {
    t.pass('install step', { skip: `npm registry unreachable and packages not in the cache: ${install.stderr.split('\n')[0]}` });
    return;
  }
  t.equal(install.code, 0, install.stderr);
  const modules = readdirSync(join(dest, 'node_modules'));
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  for (const dep of Object.keys(pkg.dependencies)) t.ok(existsSync(join(dest, 'node_modules', dep)), `dependency ${dep} installed`);
  // (jose and @types/node are also production dependencies of openid-client and protobufjs.)
  for (const dev of ['tap', 'typescript', 'tsx', 'oidc-provider']) {
    t.ok(dev in pkg.devDependencies);
    t.notOk(existsSync(join(dest, 'node_modules', dev)), `dev-only ${dev} not installed`);
  }
  t.ok(modules.length > 0);
  t.ok(existsSync(join(dest, 'templates', 'onboard.yml')) && existsSync(join(dest, 'catalog.yml')), 'components ship in the package');

  const env = jobEnv({ PATH: `${bin}:${process.env.PATH}` });
  const entry = join(bin, 'gitlab-otel-entrypoint');
  const version = await runProcess(entry, ['--version'], env);
  t.same({ code: version.code, stdout: version.stdout }, { code: 0, stdout: '0.1.0\n' }, 'flags go to gitlab-otel');
  const help = await runProcess(entry, [], env);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: gitlab-otel/, 'no arguments: help');
  const sub = await runProcess(entry, ['span', '--', 'sh', '-c', 'echo wrapped; exit 3'], env);
  t.same({ code: sub.code, stdout: sub.stdout }, { code: 3, stdout: 'wrapped\n' }, 'subcommands go to gitlab-otel');
  const shell = await runProcess(entry, ['sh', '-c', 'echo "as a job shell"; exit 4'], env);
  t.same(
    { code: shell.code, stdout: shell.stdout },
    { code: 4, stdout: 'as a job shell\n' },
    'a shell command (what GitLab executors pass) runs as is',
  );
});
