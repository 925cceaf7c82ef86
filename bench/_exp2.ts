import { GitLabRunnerApiSimulator } from '../src/simulators/gitlab-runner-api.js';
import { makeJobPayload } from '../src/simulators/job-payload.js';
import { RunnerSimulator } from '../src/simulators/runner.js';
import { OtlpReceiver } from '../src/simulators/otlp-receiver.js';
import { buildJobLog } from '../src/simulators/job-log-builder.js';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
const gitlab = await new GitLabRunnerApiSimulator({ runnerToken: 't', record: false }).start();
const receiver = await new OtlpReceiver().start();
writeFileSync('/tmp/exp/p.yml', JSON.stringify({ listen: '127.0.0.1:0', admin: null, upstream: { url: gitlab.url }, endpoints: [{ url: receiver.url, compression: 'none', queue: { batch_delay: '200ms' } }], log_level: 'info' }));
const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir=/tmp/exp/prof', 'dist/cli.js', 'runner-proxy', '--config', '/tmp/exp/p.yml'], { stdio: ['ignore', 'ignore', 'pipe'] });
const port = await new Promise<number>((res) => createInterface({ input: child.stderr! }).on('line', (l) => { const m = /"listen":"[^"]*:(\d+)"/.exec(l); if (m) res(Number(m[1])); }));
const p = new RunnerSimulator({ url: `http://127.0.0.1:${port}`, token: 't' });
const log = buildJobLog('user-sections', { start: new Date(), timestamps: true }).bytes;
const pct = (a: number[], q: number) => [...a].sort((x, y) => x - y)[Math.floor(q * a.length)]!;
const times: Record<string, number[]> = { POST: [], PUT: [], PATCH: [] };
for (let i = 0; i < 300; i++) {
  gitlab.enqueue(makeJobPayload({ id: 5000 + i, contract: { kind: 'tracing', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanParentId: '00f067aa0ba902b7' } }));
  const j = (await p.requestJob())!;
  await p.runJob(j, { log, state: 'success', patchSizes: Array(20).fill(16384) });
  for (const e of p.sent) times[e.method]!.push(e.ms);
  p.sent.length = 0;
}
for (const k of Object.keys(times)) console.log(k, 'p50', pct(times[k]!, 0.5).toFixed(3), 'p99', pct(times[k]!, 0.99).toFixed(3), 'max', Math.max(...times[k]!).toFixed(1));
console.log('spans', receiver.spans.length);
child.kill('SIGINT'); await new Promise((r) => child.once('exit', r)); p.close(); await gitlab.stop(); await receiver.stop();
