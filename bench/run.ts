// `npm run bench`: every benchmark of the suite in one run, one table of
// figures with their baselines, ratios and targets, and bench/results.json
// with the numbers and the machine they were measured on.
//   npm run bench               the full suite (about ten minutes on 2 cores)
//   npm run bench -- --quick    a smoke run with small sizes
//   npm run bench -- proxy      only the named module(s)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import type { BenchFigure, BenchModule } from './types.js';

const MODULES: Record<string, () => Promise<{ default: BenchModule }>> = {
  proxy: () => import('./proxy.js'),
  'log-parser': () => import('./log-parser.js'),
  export: () => import('./export.js'),
  onboarding: () => import('./onboarding.js'),
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

const started = Date.now();
const figures: (BenchFigure & { module: string })[] = [];
const failures: { module: string; error: string }[] = [];
for (const name of only.length > 0 ? only : Object.keys(MODULES)) {
  process.stderr.write(`bench: ${name}${quick ? ' (quick)' : ''}\n`);
  const t0 = Date.now();
  try {
    const mod = await MODULES[name]!();
    figures.push(...(await mod.default({ quick, log })).map((f) => ({ ...f, module: name })));
  } catch (err) {
    failures.push({ module: name, error: String((err as Error).stack ?? err) });
    process.stderr.write(`bench: ${name} failed: ${String(err)}\n`);
  }
  process.stderr.write(`bench: ${name} took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}

process.stdout.write(`\n${table(figures)}\n\n`);
const notes = figures.filter((f) => f.note);
if (notes.length > 0) {
  process.stdout.write(`notes:\n${notes.map((f) => `  ${f.suite} / ${f.name}: ${f.note}`).join('\n')}\n\n`);
}
const missed = figures.filter((f) => f.met === false);
process.stdout.write(
  `${figures.length} figures, ${figures.filter((f) => f.met).length} targets met, ${missed.length} missed, ${failures.length} module(s) failed, ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
);

const cpus = os.cpus();
const results = {
  date: new Date().toISOString(),
  quick,
  machine: {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
  },
  durationSeconds: Math.round((Date.now() - started) / 1000),
  modulesRefreshed: undefined as string[] | undefined,
  figures,
  failures,
};
// A quick run never overwrites the full results. A run of some modules
// refreshes their figures and keeps the others' from the last full run.
const out = new URL(quick ? './results.quick.json' : './results.json', import.meta.url);
if (only.length > 0 && existsSync(out)) {
  const previous = JSON.parse(readFileSync(out, 'utf8')) as typeof results;
  results.figures = [...previous.figures.filter((f) => !only.includes(f.module)), ...figures];
  results.modulesRefreshed = only;
}
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`written to ${out.pathname}\n`);
process.exitCode = failures.length > 0 ? 1 : 0;
