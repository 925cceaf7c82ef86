// GITLAB_OTEL_TELEMETRY accepts the same values in the runner proxy (read from
// the job payload's variables) and in the in-job commands (read from the
// environment): the README promises it, so both readers are asked about the
// same values and must agree with the list written here.
import t from 'tap';
import { fallbackOptIn } from '../../src/in-job/trace-context.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import { negotiate } from '../../src/runner-proxy/wire/negotiation.js';
import { readJobPayload } from '../../src/runner-proxy/wire/payload.js';

const ON = ['true', 'TRUE', 'True', ' true ', '1', 'yes', 'YES', 'on', 'On'];
const OFF = ['false', '0', 'no', 'off', '', ' ', 'truthy', '2', 'enabled', 'y'];

function proxyEnables(value: string): boolean {
  const payload = makeJobPayload({
    id: 9100,
    pipelineId: 4242,
    contract: { kind: 'none' },
    variables: [{ key: 'GITLAB_OTEL_TELEMETRY', value, public: true }],
  });
  const read = readJobPayload(JSON.parse(JSON.stringify(payload)));
  if (!read.ok) throw new Error(`payload unreadable: ${read.problem}`);
  return negotiate(read.value, {
    policy: 'payload-or-variable',
    nativeRunnerSpan: 'replace',
    usePayloadEndpoints: false,
    upstreamUrl: 'https://gitlab.example.com',
  }).enabled;
}

t.test('the proxy and the in-job commands accept the same GITLAB_OTEL_TELEMETRY values', async (t) => {
  for (const value of ON) {
    t.equal(proxyEnables(value), true, `proxy: ${JSON.stringify(value)} opts in`);
    t.equal(fallbackOptIn({ GITLAB_OTEL_TELEMETRY: value }), true, `in-job: ${JSON.stringify(value)} opts in`);
  }
  for (const value of OFF) {
    t.equal(proxyEnables(value), false, `proxy: ${JSON.stringify(value)} does not`);
    t.equal(fallbackOptIn({ GITLAB_OTEL_TELEMETRY: value }), false, `in-job: ${JSON.stringify(value)} does not`);
  }
  t.equal(fallbackOptIn({}), false, 'in-job: unset does not');
});

t.test('the proxy needs payload-or-variable to act on it at all', async (t) => {
  const payload = makeJobPayload({
    id: 9101,
    contract: { kind: 'none' },
    variables: [{ key: 'GITLAB_OTEL_TELEMETRY', value: 'true', public: true }],
  });
  const read = readJobPayload(JSON.parse(JSON.stringify(payload)));
  t.ok(read.ok);
  if (read.ok) {
    const d = negotiate(read.value, {
      policy: 'payload',
      nativeRunnerSpan: 'replace',
      usePayloadEndpoints: false,
      upstreamUrl: 'https://g',
    });
    t.equal(d.enabled, false);
  }
});
