// Subcommand dispatch, through the real CLI entry in a child process (run()
// writes to the process's own stdout/stderr): help and version, the exit code
// 2 for no or an unknown command, and every listed subcommand loads and
// answers its own --help.
import t from 'tap';
import { usage, VERSION } from '../../src/cli/main.js';
import { coverageEnv } from '../support/child-node.js';
import { runCli } from '../support/in-job-harness.js';

const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...coverageEnv() };

t.test('usage lists every subcommand, sorted', async (t) => {
  const names = [...usage().matchAll(/^ {2}(\S+) {2,}/gm)].map((m) => m[1]!);
  t.same(names, ['check-config', 'demo', 'inspect', 'onboard', 'pipeline-span', 'runner-proxy', 'span']);
  t.same(names, [...names].sort());
});

t.test('--help on stdout, exit 0; no command: usage on stderr, exit 2', async (t) => {
  const help = await runCli(['--help'], env);
  t.equal(help.code, 0);
  t.equal(help.stdout, usage());
  const none = await runCli([], env);
  t.equal(none.code, 2);
  t.equal(none.stdout, '');
  t.equal(none.stderr, usage());
});

t.test('--version prints the package version', async (t) => {
  const r = await runCli(['--version'], env);
  t.equal(r.code, 0);
  t.equal(r.stdout, `${VERSION}\n`);
});

t.test('an unknown command is named, exit 2', async (t) => {
  const r = await runCli(['frobnicate'], env);
  t.equal(r.code, 2);
  t.match(r.stderr, /^gitlab-otel: unknown command 'frobnicate'\n\nUsage: gitlab-otel/);
});

t.test('arguments after the command reach the subcommand', async (t) => {
  for (const [name, pattern] of [
    ['span', /^Usage: gitlab-otel span /],
    ['onboard', /^Usage: gitlab-otel onboard /],
  ] as const) {
    const r = await runCli([name, '--help'], env);
    t.equal(r.code, 0, `${name} --help exits 0`);
    t.match(r.stdout + r.stderr, pattern, `${name} answered its own --help`);
  }
});
