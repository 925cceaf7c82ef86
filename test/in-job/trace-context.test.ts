// W3C trace context as a job sees it: TRACEPARENT parsing and formatting, the
// trace id scheme, the fallback pipeline root and the parent a span takes.
// Pure; called directly.
import t from 'tap';
import {
  fallbackOptIn,
  formatTraceparent,
  jobParent,
  parseTraceparent,
  pipelineRootContext,
  traceIdScheme,
} from '../../src/in-job/trace-context.js';
import { gitlabTraceId, instanceScopedTraceId, pipelineRootSpanId } from '../../src/telemetry/pipeline-ids.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';
const CI = { CI_SERVER_URL: 'https://gitlab.example.com' };

t.test('traceparent parsing follows W3C trace context', async (t) => {
  t.same(parseTraceparent(`00-${TRACE}-${PARENT}-01`), { traceId: TRACE, spanId: PARENT, sampled: true });
  t.same(parseTraceparent(`00-${TRACE}-${PARENT}-00`), { traceId: TRACE, spanId: PARENT, sampled: false });
  t.same(
    parseTraceparent(`01-${TRACE}-${PARENT}-01-extra`),
    { traceId: TRACE, spanId: PARENT, sampled: true },
    'later versions may append fields',
  );
  for (const bad of [
    '',
    'garbage',
    `00-${TRACE}-${PARENT}-01-extra`,
    `ff-${TRACE}-${PARENT}-01`,
    `00-${'0'.repeat(32)}-${PARENT}-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`,
    `00-${TRACE.toUpperCase()}-${PARENT}-01`,
  ]) {
    t.equal(parseTraceparent(bad), undefined, `rejects ${JSON.stringify(bad)}`);
  }
  t.equal(formatTraceparent(TRACE, PARENT, false), `00-${TRACE}-${PARENT}-00`);
});

t.test('parent choice: TRACEPARENT, else the fallback pipeline root, else none', async (t) => {
  t.match(jobParent({ TRACEPARENT: `00-${TRACE}-${PARENT}-01`, TRACESTATE: 'gl=1' }), {
    source: 'traceparent',
    context: { traceId: TRACE, spanId: PARENT, traceState: 'gl=1' },
  });
  const fallback = jobParent({
    TRACEPARENT: 'broken',
    GITLAB_OTEL_TELEMETRY: 'true',
    CI_SERVER_URL: CI.CI_SERVER_URL,
    CI_PIPELINE_ID: '777',
  });
  t.same(fallback, {
    source: 'pipeline',
    context: { traceId: gitlabTraceId(777), spanId: pipelineRootSpanId(CI.CI_SERVER_URL, 777), sampled: true },
  });
  t.same(jobParent({ CI_SERVER_URL: CI.CI_SERVER_URL, CI_PIPELINE_ID: '777' }), { source: 'none' }, 'no opt-in, no derived parent');
});

t.test('trace id scheme: GITLAB_OTEL_TRACE_IDS, gitlab when unset or unknown', async (t) => {
  t.equal(traceIdScheme({}), 'gitlab');
  t.equal(traceIdScheme({ GITLAB_OTEL_TRACE_IDS: ' Instance-Scoped ' }), 'instance-scoped', 'trimmed, case-insensitive');
  t.equal(traceIdScheme({ GITLAB_OTEL_TRACE_IDS: 'random' }), 'gitlab');
});

t.test('the pipeline root context is derived as the proxy derives it', async (t) => {
  const server = CI.CI_SERVER_URL;
  t.same(pipelineRootContext({ CI_SERVER_URL: server, CI_PIPELINE_ID: '777' }), {
    traceId: gitlabTraceId(777),
    spanId: pipelineRootSpanId(server, 777),
    sampled: true,
  });
  t.same(
    pipelineRootContext({ CI_SERVER_URL: server, CI_PIPELINE_ID: '56', GITLAB_OTEL_ROOT_PIPELINE_ID: '55' }),
    { traceId: gitlabTraceId(55), spanId: pipelineRootSpanId(server, 55), sampled: true },
    'a child pipeline joins the root pipeline passed down',
  );
  t.match(pipelineRootContext({ CI_SERVER_URL: server, CI_PIPELINE_ID: '777', GITLAB_OTEL_TRACE_IDS: 'instance-scoped' }), {
    traceId: instanceScopedTraceId(server, 777),
  });
  t.equal(pipelineRootContext({ CI_PIPELINE_ID: '777' }), undefined, 'no server URL');
  t.equal(pipelineRootContext({ CI_SERVER_URL: server }), undefined, 'no pipeline');
});

t.test('fallback opt-in reads GITLAB_OTEL_TELEMETRY', async (t) => {
  t.equal(fallbackOptIn({}), false);
  t.equal(fallbackOptIn({ GITLAB_OTEL_TELEMETRY: 'true' }), true);
});
