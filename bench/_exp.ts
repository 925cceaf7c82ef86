import { GitLabRunnerApiSimulator } from '../src/simulators/gitlab-runner-api.js';
import { makeJobPayload } from '../src/simulators/job-payload.js';
import { RunnerSimulator } from '../src/simulators/runner.js';
import { OtlpReceiver } from '../src/simulators/otlp-receiver.js';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
const contract = process.argv[2] === 'on';
const gitlab = await new GitLabRunnerApiSimulator({ runnerToken: 't', record: false }).start();
const receiver = await new OtlpReceiver().start();
writeFileSync('/tmp/exp/p.yml', JSON.stringify({ listen: '127.0.0.1:0', admin: null, upstream: { url: gitlab.url }, endpoints: [{ url: receiver.url }] }));
const child = spawn(process.execPath, process.env.MIN ? ['/tmp/exp/minproxy.mjs', gitlab.url] : ['dist/cli.js', 'runner-proxy', '--config', '/tmp/exp/p.yml'], { stdio: ['ignore', 'ignore', 'pipe'] });
const port = await new Promise<number>((res) => createInterface({ input: child.stderr! }).on('line', (l) => { const m = /"listen":"[^"]*:(\d+)"/.exec(l); if (m) res(Number(m[1])); }));
const d = new RunnerSimulator({ url: gitlab.url, token: 't' });
const p = new RunnerSimulator({ url: `http://127.0.0.1:${port}`, token: 't' });
const pct = (a: number[], q: number) => [...a].sort((x, y) => x - y)[Math.floor(q * a.length)]!;
for (const [name, r] of [['direct', d], ['proxy', p], ['direct', d], ['proxy', p]] as const) {
  const times: number[] = [];
  for (let i = 0; i < 300; i++) {
    const id = Math.floor(Math.random() * 1e9);
    gitlab.enqueue(makeJobPayload({ id, contract: contract ? { kind: 'tracing', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanParentId: '00f067aa0ba902b7' } : { kind: 'none' } }));
    const j = (await r.requestJob())!;
    const ex = await r.call('PUT', `/api/v4/jobs/${j.id}`, { 'JOB-TOKEN': j.token, 'Content-Type': 'application/json' }, Buffer.from('{"state":"running"}'));
    times.push(ex.ms);
  }
  r.sent.length = 0;
  console.log(name, 'PUT p50', pct(times, 0.5).toFixed(3), 'p99', pct(times, 0.99).toFixed(3));
}
child.kill(); d.close(); p.close(); await gitlab.stop(); await receiver.stop();
