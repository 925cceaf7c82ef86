// young-generation: reading the semi-space bound node was started with (docs/performance.md#garbage-collection).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { SHIPPED_NODE_OPTIONS, semiSpaceBoundMiB } from '../../src/runner-proxy/young-generation.js';

t.test('the bound comes from the command line or NODE_OPTIONS, the command line last', async (t) => {
  t.equal(semiSpaceBoundMiB([], undefined), undefined);
  t.equal(semiSpaceBoundMiB(['--enable-source-maps'], '--trace-warnings'), undefined);
  t.equal(semiSpaceBoundMiB(['--max-semi-space-size=8'], undefined), 8);
  t.equal(semiSpaceBoundMiB([], ' --max-semi-space-size=4  --trace-warnings'), 4);
  t.equal(
    semiSpaceBoundMiB(['--max_semi_space_size=2'], '--max-semi-space-size=4'),
    2,
    'underscores as V8 spells them; argv after NODE_OPTIONS',
  );
  t.equal(semiSpaceBoundMiB(['--max-semi-space-size', '16'], undefined), 16, 'the value as the next argument');
  t.equal(semiSpaceBoundMiB(['--max-semi-space-size=8', '--max-semi-space-size=1'], undefined), 1, 'the last one wins');
  t.equal(semiSpaceBoundMiB(['--max-semi-space-size=lots'], undefined), undefined, 'not a number: not a bound');
  t.equal(semiSpaceBoundMiB(['--max-semi-space-size'], undefined), undefined, 'no value');
  t.equal(semiSpaceBoundMiB([], SHIPPED_NODE_OPTIONS), 8, 'what the shipped unit and image set');
});

t.test('the shipped NODE_OPTIONS really bounds the new space of a node started with it', async (t) => {
  // V8's own figure, in a child started as the unit starts the proxy; and unbounded, the default grows past it.
  const script =
    "const v8=require('node:v8');const keep=[];for(let i=0;i<3e6;i++){const o={a:i,b:[i]};if(i%10===0)keep.push(o);if(keep.length>20000)keep.length=0}" +
    "process.stdout.write(String(v8.getHeapSpaceStatistics().find((s)=>s.space_name==='new_space').space_size))";
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS'));
  const run = (nodeOptions?: string): number => {
    const r = spawnSync(process.execPath, ['-e', script], {
      env: nodeOptions ? { ...env, NODE_OPTIONS: nodeOptions } : env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
    return Number(r.stdout);
  };
  const MiB = 1024 * 1024;
  const bounded = run(SHIPPED_NODE_OPTIONS);
  const unbounded = run();
  t.ok(bounded <= 2 * 8 * MiB, `new space with ${SHIPPED_NODE_OPTIONS}: ${bounded / MiB} MiB, at most two 8 MiB semi-spaces`);
  t.ok(unbounded > bounded, `Node's default let the same allocation grow it further: ${unbounded / MiB} MiB`);
});
