// Placing arriving spans under their job (src/demo/span-progress.ts): spans
// arrive children first and only the job span names its job. Pure.
import t from 'tap';
import { CI } from '../../src/telemetry/attributes.js';
import { SpanProgress } from '../../src/demo/span-progress.js';
import { span } from '../support/demo-spans.js';

t.test('SpanProgress: sections arriving before their stage are told about with it, parents first', async (t) => {
  const p = new SpanProgress();
  t.same(p.jobStarted(101, 'j1'), []);
  const inner = span('s2', 's1', 'compile.native', { [CI.sectionName]: 'compile.native' });
  const outer = span('s1', 'st', 'build', { [CI.sectionName]: 'build' });
  t.same(p.receive([inner, outer]), [], 'nothing is known about sections whose stage has not arrived');
  t.equal(p.unplaced, 2);
  const events = p.receive([span('st', 'j1', 'step_script', { [CI.stageName]: 'step_script' }, true)]);
  t.same(
    events.map((e) => [e.kind, e.jobId, e.name, e.depth, e.failed]),
    [
      ['stage', 101, 'step_script', 1, true],
      ['section', 101, 'build', 2, false],
      ['section', 101, 'compile.native', 3, false],
    ],
  );
  t.equal(p.unplaced, 0);
  const job = p.receive([span('j1', 'remote-parent', 'job_execution', { [CI.jobId]: 101, [CI.jobStatus]: 'failed' }, true)]);
  t.match(job, [{ kind: 'job', jobId: 101, status: 'failed', failed: true, depth: 0 }]);
});

t.test('SpanProgress: a stage of a job never announced waits; its job span places it', async (t) => {
  const p = new SpanProgress();
  t.same(p.receive([span('a', 'j9', 'get_sources', { [CI.stageName]: 'get_sources' })]), []);
  const events = p.receive([span('j9', 'x', 'job_execution', { [CI.jobId]: 909 })]);
  t.same(
    events.map((e) => [e.kind, e.jobId]),
    [
      ['job', 909],
      ['stage', 909],
    ],
  );
  t.same(p.receive([span('j8', 'x', 'job_execution', {})]), [], 'a job span without a job id is not guessed at');
});
