// The README's benchmark table is bench/results.json rendered, exactly: every
// figure with its baseline, target and met/missed, none left out
// (docs/verification.md#benchmarks). A full `npm run bench` rewrites it; a
// hand edit of the table, or a results file the README was not regenerated
// from, fails here.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { readmeTable, renderReadmeTable, type BenchResults } from '../../bench/readme-table.js';

const results = JSON.parse(readFileSync(new URL('../../bench/results.json', import.meta.url), 'utf8')) as BenchResults;
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

t.test('the README shows bench/results.json, every figure', async (t) => {
  const table = readmeTable(readme);
  t.ok(table, 'the README has the generated table between its markers');
  t.equal(table, renderReadmeTable(results), 'regenerate with: npx tsx bench/readme-table.ts');
  for (const f of results.figures) t.ok(table?.includes(f.name.replace(/\|/g, '\\|')), `${f.suite} / ${f.name} is in the README`);
});

t.test(
  'a full run is kept under bench/results/ with its machine',
  { skip: results.file ? false : 'bench/results.json predates per-run files' },
  async (t) => {
    const kept = JSON.parse(readFileSync(new URL(`../../${results.file}`, import.meta.url), 'utf8')) as BenchResults;
    // Modules refreshed by partial runs since (bench/run.ts) differ from the full run; every other figure is the file's.
    const refreshed = new Set(results.modulesRefreshed ?? []);
    const notRefreshed = (figures: BenchResults['figures']) => figures.filter((f) => !refreshed.has(f.module));
    t.same(notRefreshed(results.figures), notRefreshed(kept.figures), `${results.file} holds the same figures`);
    if (refreshed.size > 0) {
      t.ok(results.refreshed?.commit, 'a refresh names the commit it ran at');
      t.ok(
        [...refreshed].every((m) => results.figures.some((f) => f.module === m)),
        `the refreshed modules (${[...refreshed].join(', ')}) have their figures`,
      );
    }
    for (const key of ['cpu', 'cores', 'memoryGiB', 'node']) t.ok(kept.machine[key] !== undefined, `machine.${key} recorded`);
  },
);
