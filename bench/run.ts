// `npm run bench`: every benchmark of the suite in one run, one table of
// figures with their baselines, ratios and targets (misses included), the
// method each module used, and a results file with the machine it ran on.
//   npm run bench               the full suite (under ten minutes on 2 cores)
//   npm run bench -- --quick    a smoke run with small sizes
//   npm run bench -- proxy      only the named module(s)
// A full run of every module writes bench/results/<ISO date>-<short sha>.json,
// refreshes bench/results.json (the latest full run) and the README's table.
// A quick run writes bench/results.quick.json only; a run of some modules
// refreshes their figures in bench/results.json and the README table.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BenchFigure, BenchModule } from './types.js';
import { renderReadmeTable, replaceReadmeTable, type BenchResults } from './readme-table.js';

const MODULES: Record<string, () => Promise<{ default: BenchModule }>> = {
  proxy: () => import('./proxy.js'),
  'payload-edits': () => import('./payload-edits.js'),
  'log-parser': () => import('./log-parser.js'),
  export: () => import('./export.js'),
  onboarding: () => import('./onboarding.js'),
  security: () => import('./security.js'),
  metrics: () => import('./metrics.js'),
};

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.filter((a) => !a.startsWith('--'));
for (const name of only) {
  if (!MODULES[name]) {
    process.stderr.write(`bench: unknown module '${name}' (have: ${Object.keys(MODULES).join(', ')})\n`);
    process.exit(2);
  }
}

const log = (line: string): void => {
  process.stderr.write(`  ${line}\n`);
};

function fmt(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return '';
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(3).replace(/\.?0+$/, '') || '0';
}

function table(figures: BenchFigure[]): string {
  const rows = [
    ['suite', 'figure', 'value', 'baseline', 'ratio', 'target', 'met'],
    ...figures.map((f) => [
      f.suite,
      f.name,
      `${fmt(f.value)} ${f.unit}`,
      f.baseline === undefined ? '' : `${fmt(f.baseline)} ${f.unit}`,
      f.ratio === undefined ? '' : `${fmt(f.ratio)}×`,
      f.target ?? '',
      f.met === undefined ? '' : f.met ? 'yes' : 'NO',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

function gitSha(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'nogit';
  }
}

const started = Date.now();
const cpus = os.cpus();
const machine: Record<string, string | number> = {
  cpu: cpus[0]?.model ?? 'unknown',
  cores: cpus.length,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${process.platform}/${process.arch}`,
  kernel: os.release(),
};
const figures: (BenchFigure & { module: string })[] = [];
const method: { module: string; line: string }[] = [];
const failures: { module: string; error: string }[] = [];
for (const name of only.length > 0 ? only : Object.keys(MODULES)) {
  process.stderr.write(`bench: ${name}${quick ? ' (quick)' : ''}\n`);
  const t0 = Date.now();
  try {
    const mod = await MODULES[name]!();
    const got = await mod.default({
      quick,
      log,
      method: (line) => method.push({ module: name, line }),
      machine: (key, value) => {
        machine[key] = value;
      },
    });
    figures.push(...got.map((f) => ({ ...f, module: name })));
  } catch (err) {
    failures.push({ module: name, error: String((err as Error).stack ?? err) });
    process.stderr.write(`bench: ${name} failed: ${String(err)}\n`);
  }
  const took = (Date.now() - t0) / 1000;
  method.push({ module: name, line: `module took ${took.toFixed(0)} s` });
  process.stderr.write(`bench: ${name} took ${took.toFixed(1)} s\n`);
}

process.stdout.write(`\n${table(figures)}\n\n`);
const notes = figures.filter((f) => f.note);
if (notes.length > 0) {
  process.stdout.write(`notes:\n${notes.map((f) => `  ${f.suite} / ${f.name}: ${f.note}`).join('\n')}\n\n`);
}
if (method.length > 0) process.stdout.write(`method:\n${method.map((m) => `  ${m.module}: ${m.line}`).join('\n')}\n\n`);
const missed = figures.filter((f) => f.met === false);
const durationSeconds = Math.round((Date.now() - started) / 1000);
process.stdout.write(
  `${figures.length} figures, ${figures.filter((f) => f.met).length} targets met, ${missed.length} missed, ${failures.length} module(s) failed, ${durationSeconds} s` +
    `${quick ? ' (quick: not comparable with full runs)' : ''}\n`,
);

const date = new Date().toISOString();
const sha = gitSha();
const results: BenchResults = {
  date,
  commit: sha,
  quick,
  machine,
  durationSeconds,
  modulesRefreshed: undefined,
  figures,
  method,
  failures,
};
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/** The README's table shows bench/results.json exactly (test/bench/readme-table.test.ts checks it). */
function refreshReadme(latest: BenchResults): void {
  const readme = here('../README.md');
  if (!existsSync(readme)) return;
  const updated = replaceReadmeTable(readFileSync(readme, 'utf8'), renderReadmeTable(latest));
  if (updated !== undefined) writeFileSync(readme, updated);
  process.stdout.write(
    updated !== undefined ? 'README benchmark table refreshed\n' : 'README has no benchmark table markers; not refreshed\n',
  );
}
const fullRun = !quick && only.length === 0;
if (quick) {
  writeFileSync(here('./results.quick.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`written to bench/results.quick.json\n`);
} else if (fullRun) {
  // One file per full run, kept (committed): ranges quoted anywhere come from these.
  mkdirSync(here('./results'), { recursive: true });
  const file = `results/${date.replace(/[:]/g, '').replace(/\.\d+Z$/, 'Z')}-${sha}.json`;
  results.file = `bench/${file}`;
  writeFileSync(here(`./${file}`), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(here('./results.json'), `${JSON.stringify(results, null, 2)}\n`);
  refreshReadme(results);
  process.stdout.write(`written to bench/${file} and bench/results.json\n`);
} else {
  // Some modules: refresh their figures in the latest results, keep the others'.
  const out = here('./results.json');
  if (existsSync(out)) {
    const previous = JSON.parse(readFileSync(out, 'utf8')) as BenchResults;
    results.figures = [...previous.figures.filter((f) => !only.includes(f.module)), ...figures];
    results.method = [...(previous.method ?? []).filter((m) => !only.includes(m.module)), ...method];
    // The run the other figures come from keeps its date; the refresh is recorded beside it.
    results.date = previous.date;
    results.commit = previous.commit;
    // The full run's own file stays named: the figures of the modules not refreshed are still its.
    if (previous.file) results.file = previous.file;
    results.machine = { ...previous.machine, ...machine };
    results.durationSeconds = previous.durationSeconds;
    results.modulesRefreshed = [...new Set([...(previous.modulesRefreshed ?? []).filter((m) => !only.includes(m)), ...only])];
    results.refreshed = { date, commit: sha, modules: only };
  } else {
    results.modulesRefreshed = only;
  }
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  refreshReadme(results);
  process.stdout.write(`written to bench/results.json (modules refreshed: ${only.join(', ')})\n`);
}
process.exitCode = failures.length > 0 ? 1 : 0;
