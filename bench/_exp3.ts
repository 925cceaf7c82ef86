import { GitLabRunnerApiSimulator } from '../src/simulators/gitlab-runner-api.js';
import { makeJobPayload } from '../src/simulators/job-payload.js';
import { RunnerSimulator } from '../src/simulators/runner.js';
import { spawn } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
const gitlab = await new GitLabRunnerApiSimulator({ runnerToken: 't', record: false }).start();
writeFileSync('/tmp/exp/p.yml', JSON.stringify({ listen: '127.0.0.1:0', admin: null, upstream: { url: gitlab.url }, endpoints: [{ url: 'http://127.0.0.1:9' }], log_level: 'info' }));
const args = process.env.MIN ? ['/tmp/exp/minproxy.mjs', gitlab.url] : ['dist/cli.js', 'runner-proxy', '--config', '/tmp/exp/p.yml'];
const child = spawn(process.execPath, [...(process.env.NODEOPT ? process.env.NODEOPT.split(' ') : []), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
const port = await new Promise<number>((res) => createInterface({ input: child.stderr! }).on('line', (l) => { const m = /"listen":"[^"]*:(\d+)"/.exec(l); if (m) res(Number(m[1])); }));
for (const [name, url] of [['direct', gitlab.url], ['proxy', `http://127.0.0.1:${port}`], ['direct', gitlab.url], ['proxy', `http://127.0.0.1:${port}`]]) {
  const r = new RunnerSimulator({ url: url!, token: 't', callTimeoutMs: 600000 });
  const id = Math.floor(Math.random() * 1e9);
  gitlab.enqueue(makeJobPayload({ id }));
  const j = (await r.requestJob())!;
  const t0 = performance.now();
  await r.uploadArtifact(j, 256 * 1024 * 1024);
  console.log(name, ((256 * 1024 * 1024) / ((performance.now() - t0) / 1000) / 1e6).toFixed(0), 'MB/s');
  r.close();
}
console.log('VmHWM', /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1], 'kB');
child.kill(); await gitlab.stop();
