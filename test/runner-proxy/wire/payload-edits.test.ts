// payload-edits: the edits the proxy makes to the runner's request and to the job payload.
import t from 'tap';
import { advertiseJobTelemetry, editJobPayload } from '../../../src/runner-proxy/wire/payload-edits.js';
import { makeJobPayload } from '../../../src/lab/job-payload.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

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
