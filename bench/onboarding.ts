// Onboarding at scale: a group behind a token-bucket rate limit that answers
// 429 + Retry-After beyond it (the GitLab REST simulator), driven by the real
// `onboard` command.
//   1. wall time vs the theoretical minimum (requests needed ÷ rate), ≤ 1.2×;
//   2. requests wasted on 429s, ours vs stock Gitbeaker 43.8 on the same load;
//   3. writes on a second run: 0;
//   4. peak RSS of the CLI process, small group vs 10× larger group: flat.
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Gitlab, GitbeakerRetryError } from '@gitbeaker/rest';
import type { BenchFigure, BenchModule } from './types.js';
import { runOnboard } from '../src/onboarding/command.js';
import { createGitLabClient } from '../src/onboarding/gitlab-client.js';
import { GitLabRestSimulator, type SimProject } from '../src/simulators/gitlab-rest.js';

const TOKEN = 'glpat-bench';
const SUITE = 'onboarding';

function project(id: number): SimProject {
  const kinds: [Record<string, number>, Record<string, string>][] = [
    [{ JavaScript: 90, CSS: 10 }, { 'package.json': '{"dependencies":{"express":"^4"}}' }],
    [{ Ruby: 80, HTML: 20 }, { Gemfile: "gem 'rails'\n" }],
    [{ Python: 100 }, { 'requirements.txt': 'flask\n' }],
    [{ Go: 100 }, { 'go.mod': 'module x\n' }],
  ];
  const [languages, files] = kinds[id % kinds.length]!;
  return {
    id,
    path_with_namespace: `big/p${id}`,
    group_id: 1,
    default_branch: 'main',
    duo_remote_flows_enabled: true,
    duo_foundational_flows_enabled: true,
    project_access_level: 30,
    group_access_level: null,
    languages,
    files,
  };
}

function group(n: number, rateLimit?: { perSecond: number }): GitLabRestSimulator {
  return new GitLabRestSimulator({
    users: { [TOKEN]: { id: 1, username: 'bench' } },
    groups: [{ id: 1, full_path: 'big' }],
    projects: Array.from({ length: n }, (_, i) => project(i + 1)),
    ...(rateLimit ? { rateLimit } : {}),
  });
}

// Enough projects in flight to reach the bucket's rate; the pause gate keeps them from storming it.
const CONCURRENCY = 16;

async function onboardInProcess(url: string): Promise<{ code: number; lines: number }> {
  const stdout = new PassThrough();
  let lines = 0;
  stdout.on('data', (c: Buffer) => {
    for (const b of c) if (b === 10) lines += 1;
  });
  const stderr = new PassThrough();
  stderr.resume();
  const code = await runOnboard(['--group', 'big', '--concurrency', String(CONCURRENCY)], { env: { GITLAB_URL: url, GITLAB_TOKEN: TOKEN }, stdout, stderr });
  return { code, lines };
}

// The CLI in its own process, so its peak RSS is its own (the simulator stays here).
function onboardChild(url: string): Promise<{ code: number; maxRssKb: number; heapBytes: number; lines: number }> {
  const main = new URL('../src/cli/main.ts', import.meta.url).href;
  const script = `import { run } from ${JSON.stringify(main)};
process.exitCode = await run(process.argv.slice(1));
globalThis.gc();
process.stderr.write('MAXRSS ' + process.resourceUsage().maxRSS + ' HEAP ' + process.memoryUsage().heapUsed + '\\n');`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script, 'onboard', '--group', 'big', '--concurrency', String(CONCURRENCY)], {
      env: { ...process.env, GITLAB_URL: url, GITLAB_TOKEN: TOKEN },
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let lines = 0;
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      for (const b of c) if (b === 10) lines += 1;
    });
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const m = /MAXRSS (\d+) HEAP (\d+)/.exec(err);
      if (!m) return reject(new Error(`onboard child exited ${code} without reporting RSS: ${err.slice(-500)}`));
      resolve({ code: code ?? -1, maxRssKb: Number(m[1]), heapBytes: Number(m[2]), lines });
    });
  });
}

// The same GETs through a client, at a fixed concurrency: how many answers were 429s, how many calls failed.
async function getAll(api: Gitlab, n: number, concurrency: number): Promise<{ failed: number }> {
  let next = 1;
  let failed = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next <= n) {
        const id = next++;
        try {
          await api.Projects.show(id);
        } catch (err) {
          if (!(err instanceof GitbeakerRetryError)) throw err;
          failed += 1;
        }
      }
    }),
  );
  return { failed };
}

const onboarding: BenchModule = async ({ quick, log }) => {
  const figures: BenchFigure[] = [];
  // Well under what this client reaches on a shared 2-core machine, so the bucket, not the CPU, is the limit.
  const n = quick ? 50 : 1000;
  const rate = quick ? 50 : 100;

  // 1 + 3: the group behind the bucket, then a second run.
  const sim = group(n, { perSecond: rate });
  const { url } = await sim.start();
  try {
    log(`onboarding: ${n} projects behind a ${rate} req/s bucket (burst ${rate})`);
    const t0 = performance.now();
    const first = await onboardInProcess(url);
    const wall = (performance.now() - t0) / 1000;
    const needed = sim.requests - sim.rateLimited;
    // The bucket starts full: `rate` requests are free, the rest arrive at `rate` per second.
    const minimum = Math.max(needed - rate, 0) / rate;
    log(`  first run: exit ${first.code}, ${first.lines} results, ${sim.requests} requests (${sim.rateLimited} × 429) in ${wall.toFixed(2)} s; minimum ${minimum.toFixed(2)} s`);
    figures.push({
      suite: SUITE,
      name: `wall time, ${n}-project group at ${rate} req/s`,
      value: wall,
      unit: 's',
      baseline: minimum,
      ratio: wall / minimum,
      target: '≤ 1.2× the theoretical minimum',
      met: wall / minimum <= 1.2 && first.code === 0 && first.lines === n,
      note: `${needed} requests needed, ${sim.rateLimited} answered 429`,
    });

    sim.setRateLimit(null);
    const writesBefore = sim.writes;
    const second = await onboardInProcess(url);
    const writes = sim.writes - writesBefore;
    log(`  second run: exit ${second.code}, ${writes} writes`);
    figures.push({ suite: SUITE, name: 'writes on a second run', value: writes, unit: 'requests', target: '0', met: writes === 0 && second.code === 0 });
  } finally {
    await sim.stop();
  }

  // 2: 429s, ours vs stock Gitbeaker, the same GETs behind the same bucket.
  const gets = quick ? 150 : 500;
  const perSecond = 50;
  const compare: Record<'ours' | 'stock', { rateLimited: number; requests: number; failed: number; seconds: number }> = {} as never;
  for (const which of ['ours', 'stock'] as const) {
    const s = group(gets, { perSecond });
    const { url: u } = await s.start();
    try {
      const api = which === 'ours' ? createGitLabClient({ url: u, token: TOKEN }).api : new Gitlab({ host: u, token: TOKEN });
      const t = performance.now();
      const { failed } = await getAll(api, gets, CONCURRENCY);
      compare[which] = { rateLimited: s.rateLimited, requests: s.requests, failed, seconds: (performance.now() - t) / 1000 };
    } finally {
      await s.stop();
    }
  }
  log(`  ${gets} GETs at ${perSecond} req/s, concurrency ${CONCURRENCY}: ours ${JSON.stringify(compare.ours)}, stock Gitbeaker ${JSON.stringify(compare.stock)}`);
  figures.push({
    suite: SUITE,
    name: `429 answers for ${gets} GETs (stock Gitbeaker 43.8 as baseline)`,
    value: compare.ours.rateLimited,
    unit: 'responses',
    baseline: compare.stock.rateLimited,
    ratio: compare.stock.rateLimited > 0 ? compare.ours.rateLimited / compare.stock.rateLimited : undefined,
    target: 'fewer than stock, and no failed call',
    met: compare.ours.rateLimited < compare.stock.rateLimited && compare.ours.failed === 0,
    note: `failed calls: ours ${compare.ours.failed}, stock ${compare.stock.failed} (GitbeakerRetryError)`,
  });

  // 4: peak RSS, small vs 10× larger group, no rate limit.
  const small = quick ? 50 : 100;
  const large = small * 10;
  const rss: number[] = [];
  const heap: number[] = [];
  for (const size of [small, large]) {
    const s = group(size);
    const { url: u } = await s.start();
    try {
      const r = await onboardChild(u);
      log(`  ${size} projects: exit ${r.code}, ${r.lines} results, peak RSS ${(r.maxRssKb / 1024).toFixed(1)} MiB, heap after GC ${(r.heapBytes / 2 ** 20).toFixed(1)} MiB`);
      rss.push(r.maxRssKb / 1024);
      heap.push(r.heapBytes / 2 ** 20);
    } finally {
      await s.stop();
    }
  }
  figures.push({
    suite: SUITE,
    name: `peak RSS of the CLI, ${large} vs ${small} projects`,
    value: rss[1]!,
    unit: 'MiB',
    baseline: rss[0]!,
    ratio: rss[1]! / rss[0]!,
    target: '≤ 1.2× (flat as the group grows)',
    met: rss[1]! / rss[0]! <= 1.2,
    note: 'peak RSS includes V8 young-generation growth under load; retained memory is the next figure',
  });
  figures.push({
    suite: SUITE,
    name: `heap retained after the run (after GC), ${large} vs ${small} projects`,
    value: heap[1]!,
    unit: 'MiB',
    baseline: heap[0]!,
    ratio: heap[1]! / heap[0]!,
    target: '≤ 1.2× (nothing kept per project)',
    met: heap[1]! / heap[0]! <= 1.2,
  });
  return figures;
};

export default onboarding;
