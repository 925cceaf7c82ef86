// job-span: the job_execution span built from the job view, the runner and the outcome.
import t from 'tap';
import { readJobPayload, type JobView } from '../../../src/runner-proxy/wire/payload.js';
import { buildJobSpan, taskRunResult } from '../../../src/runner-proxy/job/job-span.js';
import { makeJobPayload } from '../../../src/lab/job-payload.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

function view(json: unknown): JobView {
  const r = readJobPayload(json);
  if (!r.ok) throw new Error(r.problem);
  return r.value;
}

t.test('job span: attributes in both vocabularies, status from the outcome', async (t) => {
  const job = view(makeJobPayload({ id: 8, name: 'build', pipelineId: 4, runnerId: 3 }));
  const base = {
    job,
    runner: { executor: 'docker', version: '19.4.0' },
    contract: 'tracing' as const,
    traceId: TRACE,
    spanId: PARENT,
    parentSpanId: 'b7ad6b7169203331',
    startTimeUnixNano: 10n,
    endTimeUnixNano: 20n,
  };
  const ok = buildJobSpan({ ...base, outcome: { state: 'success' } });
  t.match(ok, { name: 'job_execution', kind: 0, parentIsRemote: true, status: { code: 0 } });
  t.match(ok.attributes, {
    'ci.job.id': 8,
    'ci.pipeline.id': 4,
    'ci.project.id': 42,
    'ci.runner.id': 3,
    'ci.runner.executor': 'docker',
    'ci.job.status': 'success',
    'cicd.pipeline.run.id': '4',
    'cicd.pipeline.task.name': 'build',
    'cicd.pipeline.task.run.id': '8',
    'cicd.worker.id': '3',
    'cicd.pipeline.task.run.url.full': 'https://gitlab.example.com/acme/shop/-/jobs/8',
    'vcs.ref.head.name': 'main',
  });
  const failed = buildJobSpan({ ...base, outcome: { state: 'failed', failureReason: 'script_failure', exitCode: 1 } });
  t.match(failed, {
    status: { code: 2, message: 'script_failure' },
    attributes: { 'ci.job.exit_code': 1, 'error.type': 'script_failure' },
  });
  t.equal(taskRunResult({ state: 'failed', failureReason: 'job_execution_timeout' }), 'timeout');
  t.equal(taskRunResult({ state: 'canceled' }), 'cancellation');
  t.match(buildJobSpan({ ...base, outcome: { state: 'abandoned' } }), {
    status: { code: 2 },
    attributes: { 'ci.job.status': 'unknown', 'error.type': 'abandoned' },
  });
});
