// payload: reading the job payload, job updates and runner info at the boundary (metadata only).
import t from 'tap';
import { readJobPayload, readJobUpdate, readRunnerInfo, type JobView } from '../../../src/runner-proxy/wire/payload.js';
import { makeJobPayload } from '../../../src/lab/job-payload.js';

function view(json: unknown): JobView {
  const r = readJobPayload(json);
  if (!r.ok) throw new Error(r.problem);
  return r.value;
}

t.test('readJobPayload keeps metadata only', async (t) => {
  const payload = makeJobPayload({ id: 77, name: 'lint', pipelineId: 9, variables: [{ key: 'SECRET', value: 's3cr3t', masked: true }] });
  const v = view(payload);
  t.match(v, { jobId: 77, name: 'lint', pipelineId: 9, projectId: 42, ref: 'main', traceSections: true, hasVariablesArray: true });
  t.equal(v.ci.CI_PIPELINE_ID, '9');
  t.notOk(JSON.stringify(v).includes('s3cr3t'), 'user variable values are not read');
  t.notOk(JSON.stringify(v).includes(payload.token as string), 'the job token is not kept');
  t.notOk('CI_JOB_TOKEN' in v.ci);
  t.match(readJobPayload(null), { ok: false });
  t.match(readJobPayload({ id: -1 }), { ok: false, problem: /id/ });
  const drift = view({ id: 1, job_info: { name: 5, pipeline_id: 'x' }, variables: 'nope' });
  t.equal(drift.name, undefined);
  t.equal(drift.schemaProblems.length, 3, 'wrong types are reported, not fatal');
  t.ok(view({ id: 2, variables: [{ key: 'TRACEPARENT', value: 'x' }] }).definesTraceparent);
  t.same(
    readJobUpdate({ state: 'failed', failure_reason: 'script_failure', exit_code: 2, output: { bytesize: 10, checksum: 'crc32:0' } }),
    {
      state: 'failed',
      failureReason: 'script_failure',
      exitCode: 2,
      outputBytesize: 10,
      outputChecksum: 'crc32:0',
    },
  );
  t.same(readJobUpdate('x'), {});
  t.same(readRunnerInfo({ info: { version: '19.4.0', executor: 'docker', features: {} } }), {
    version: '19.4.0',
    revision: undefined,
    executor: 'docker',
    platform: undefined,
    architecture: undefined,
    shell: undefined,
  });
});
