// The demo's pipeline plan (src/demo/pipeline-plan.ts): jobs, trace id,
// compressed stage durations and which job --fail breaks. Pure.
import t from 'tap';
import { failingJobIndex, planDemoPipeline, type DemoIds } from '../../src/demo/pipeline-plan.js';

const IDS: DemoIds = { pipelineId: 4242 };
/** GitLab's trace id for pipeline 4242 (docs/runner-protocol.md#trace-ids): 0x1092. */
const TRACE_ID = '00000000000000000000000000001092';

t.test('planDemoPipeline: N jobs in one trace, distinct ids and parents, compressed but complete durations', async (t) => {
  const plan = planDemoPipeline({ jobs: 8, fail: false, speed: 20, staggerMs: 100 }, IDS);
  t.equal(plan.jobs.length, 8);
  t.equal(plan.traceId, TRACE_ID, "GitLab's trace id for the pipeline");
  t.equal(new Set(plan.jobs.map((j) => j.id)).size, 8, 'distinct job ids');
  t.equal(new Set(plan.jobs.map((j) => j.name)).size, 8, 'distinct job names, also past the templates');
  t.notOk(
    plan.jobs.some((j) => j.scenario === 'script-failure'),
    'nothing fails without --fail',
  );
  for (const job of plan.jobs) {
    t.equal(Object.keys(job.durationsMs).length, 13, `${job.name}: every stage the log builder writes has a duration`);
    t.ok(job.durationsMs.step_script < 34_000 / 10, `${job.name}: the script is compressed`);
  }
  const failing = planDemoPipeline({ jobs: 3, fail: true, speed: 20, staggerMs: 100 }, IDS);
  t.same(
    failing.jobs.map((j) => j.scenario === 'script-failure'),
    [false, true, false],
    '--fail fails exactly one job',
  );
  t.equal(failingJobIndex(1), 0, 'a one-job pipeline fails its only job');
  const single = planDemoPipeline({ jobs: 1, fail: true, speed: 20, staggerMs: 100 }, IDS);
  t.equal(single.jobs[0]!.scenario, 'script-failure');
});
