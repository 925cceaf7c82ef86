// Pure pieces of the proxy: raw-JSON edits, payload reading, negotiation, the job span.
import t from 'tap';
import { append, applyEdits, insertFirstMember, locate, removal, type MemberSpan } from '../../../src/runner-proxy/wire/json-text.js';

const removeMember = (text: string, m: MemberSpan): string => applyEdits(text, [removal(text, m)]);
const appendElement = (text: string, element: string): string =>
  applyEdits(text, [append(text, { start: text.indexOf('['), end: text.lastIndexOf(']') + 1 }, element)]);
import { advertiseJobTelemetry, editJobPayload } from '../../../src/runner-proxy/wire/payload-edits.js';
import { readJobPayload, readJobUpdate, readRunnerInfo, type JobView } from '../../../src/runner-proxy/wire/payload.js';
import { buildJobSpan, taskRunResult } from '../../../src/runner-proxy/job/job-span.js';
import { makeJobPayload } from '../../../src/lab/job-payload.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

function view(json: unknown): JobView {
  const r = readJobPayload(json);
  if (!r.ok) throw new Error(r.problem);
  return r.value;
}

t.test('json-text locates, removes, inserts and appends without touching other bytes', async (t) => {
  const text = ' { "a" : 1 , "b": {"c": [1, 2 ], "d":"x\\"}" }, "big": 123456789012345678901 , "a": 2 }';
  const a = locate(text, ['a'])!;
  t.equal(text.slice(a.start, a.end), '2', 'duplicate keys: the last wins, as in Go');
  t.equal(text.slice(locate(text, ['b', 'd'])!.start, locate(text, ['b', 'd'])!.end), '"x\\"}"', 'escaped quotes');
  t.equal(locate(text, ['b', 'zz']), undefined);
  t.equal(locate(text, ['a', 'x']), undefined, 'cannot descend into a number');
  const removed = removeMember(text, locate(text, ['b'])!);
  t.same(JSON.parse(removed), { a: 2, big: 1.2345678901234568e20 });
  t.ok(removed.includes('123456789012345678901'), 'big integers keep their digits');
  const last = removeMember('{"x":1,"y":2}', locate('{"x":1,"y":2}', ['y'])!);
  t.equal(last, '{"x":1}');
  t.equal(removeMember('{"only":1}', locate('{"only":1}', ['only'])!), '{}');
  t.equal(insertFirstMember('{}', 0, '"k":true'), '{"k":true}');
  t.equal(insertFirstMember('{"a":1}', 0, '"k":true'), '{"k":true,"a":1}');
  t.equal(appendElement('[]', '1'), '[1]');
  t.equal(appendElement('[ 1 ]', '2'), '[ 1 ,2]');
  t.same(
    JSON.parse(
      applyEdits('{"a":[1],"b":2}', [
        append('{"a":[1],"b":2}', locate('{"a":[1],"b":2}', ['a'])!, '3'),
        removal('{"a":[1],"b":2}', locate('{"a":[1],"b":2}', ['b'])!),
      ]),
    ),
    { a: [1, 3] },
    'several edits apply back to front',
  );
  t.throws(() => locate('{"a": tru}', ['b']), 'malformed text throws (callers fall back to the original)');
});

t.test('advertiseJobTelemetry', async (t) => {
  const body = JSON.stringify({ token: 't', info: { version: '19.4.0', features: { variables: true } } });
  const edited = advertiseJobTelemetry(body)!;
  t.same(JSON.parse(edited).info.features, { job_telemetry: true, variables: true });
  t.equal(advertiseJobTelemetry(edited), undefined, 'idempotent');
  t.same(JSON.parse(advertiseJobTelemetry('{"info":{"features":{"job_telemetry":false}}}')!).info.features, { job_telemetry: true });
  t.equal(advertiseJobTelemetry('{"info":{}}'), undefined, 'no features object: left alone');
  t.equal(advertiseJobTelemetry('{"info":{"features":[]}}'), undefined);
});

t.test('editJobPayload keeps the exact runner schema', async (t) => {
  const payload = makeJobPayload({ id: 5, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } });
  const text = JSON.stringify(payload);
  const edited = editJobPayload(text, {
    tracing: { action: 'remove' },
    variables: [{ key: 'TRACEPARENT', value: `00-${TRACE}-${PARENT}-01` }],
  })!;
  const out = JSON.parse(edited);
  t.notOk('tracing' in out.features);
  t.same(out.variables.at(-1), { key: 'TRACEPARENT', value: `00-${TRACE}-${PARENT}-01`, public: true, masked: false });
  t.equal(editJobPayload(text, { tracing: { action: 'keep' }, variables: [] }), undefined, 'no edits: undefined');
  t.equal(
    editJobPayload('{"id":1}', { tracing: { action: 'remove' }, variables: [{ key: 'K', value: 'v' }] }),
    undefined,
    'nothing to edit',
  );
});

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
