// `gitlab-otel demo` arguments (src/demo/command.ts): defaults, options and
// usage errors with a stable code. Pure.
import t from 'tap';
import { parseDemoArgs, DemoUsageError } from '../../src/demo/command.js';

t.test('parseDemoArgs: defaults, the options, and usage errors with a stable code', async (t) => {
  t.same(parseDemoArgs([]), { help: false, jobs: 3, fail: false, collectorDownMs: 0, json: false, quick: false });
  t.same(parseDemoArgs(['--jobs', '5', '--fail', '--collector-down', '1.5', '--json', '--quick']), {
    help: false,
    jobs: 5,
    fail: true,
    collectorDownMs: 1500,
    json: true,
    quick: true,
  });
  for (const bad of [
    ['--jobs', '0'],
    ['--jobs', '2.5'],
    ['--jobs', '999'],
    ['--collector-down', '-1'],
    ['--collector-down', 'soon'],
    ['--nope'],
    ['extra'],
  ]) {
    t.throws(() => parseDemoArgs(bad), { code: 'DEMO_USAGE', name: 'DemoUsageError' }, bad.join(' '));
  }
  t.ok(new DemoUsageError('x') instanceof Error);
});
