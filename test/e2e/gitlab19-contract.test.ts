// GitLab 19's real contract through the real proxy (docs/runner-protocol.md#job-telemetry,
// #trace-ids, #job-router): top-level jobs without `span_parent_id`, the
// OTLP/HTTP collectors GitLab names in the payload, endpoints the proxy cannot
// serve left to the runner, invalid trace ids, fallback trace ids that join
// GitLab's, and Job Router discovery.
import t, { type Test } from 'tap';
import { memoryLogger } from '../support/memory-logger.js';
import { startLab, runLabJob, type Lab, type LabOptions } from '../../src/lab/lab.js';
import { OtlpHttpReceiver } from '../../src/telemetry/receiver.js';
import { gitlabTraceId } from '../../src/telemetry/pipeline-ids.js';
import { railsJobRunningSpanId } from '../../src/lab/job-payload.js';

/** A proxy with no configured collector: GitLab's payload endpoints are the only ones. */
async function gitlab19Lab(t: Test, extra: Partial<LabOptions> = {}): Promise<{ lab: Lab; collector: OtlpHttpReceiver }> {
  const collector = await new OtlpHttpReceiver().start();
  const lab = await startLab({
    receiver: false,
    ...extra,
    proxyConfig: {
      // Loopback collectors are refused unless named (docs/security.md#payload-endpoints).
      telemetry: { payload_endpoints: { allowed_hosts: ['127.0.0.1:*'] } },
      ...extra.proxyConfig,
    },
  });
  t.teardown(async () => {
    await lab.stop();
    await collector.stop();
  });
  return { lab, collector };
}

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').pop()) : 0;
}

t.test('top-level job: job_execution is a root span in GitLab trace, at the OTLP/HTTP collector GitLab named', async (t) => {
  const { lab, collector } = await gitlab19Lab(t);
  const runner = lab.runner();
  const job = await runLabJob(lab, runner, { payload: { id: 19001, pipelineId: 1975306, otelEndpoints: [collector.url] } });
  t.equal(job.result.finalStatus, 200);
  await collector.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  const jobSpan = collector.spans.find((s) => s.name === 'job_execution')!;
  t.equal(jobSpan.traceId, '000000000000000000000000001e240a', "GitLab's trace id (root pipeline 1975306)");
  t.equal(jobSpan.parentSpanId, '', 'no parent: a top-level span of the pipeline trace');
  const stages = collector.spans.filter((s) => s.name !== 'job_execution');
  t.ok(stages.length > 3, 'stage spans exported too');
  t.ok(
    stages.every((s) => s.traceId === jobSpan.traceId),
    'stage spans in the same trace',
  );
  t.ok(
    stages.some((s) => s.name === 'step_script' && s.parentSpanId === jobSpan.spanId),
    'stages nest under the job span',
  );
  t.equal(job.received.variables.TRACEPARENT, `00-${jobSpan.traceId}-${jobSpan.spanId}-01`, 'TRACEPARENT points at the job span');
  t.notOk('tracing' in (job.received.payload.features as object), "the runner's native span is replaced");
  t.same(collector.refusals, [], 'every request was valid OTLP/HTTP protobuf');
  t.ok(collector.calls.length > 0 && collector.calls.every((c) => c.contentEncoding === 'gzip'), 'gzip-encoded');
});

t.test('child-pipeline job: nests under span_parent_id', async (t) => {
  const { lab, collector } = await gitlab19Lab(t);
  const parent = 'b7ad6b7169203331';
  await runLabJob(lab, lab.runner(), {
    payload: {
      id: 19002,
      pipelineId: 77,
      rootPipelineId: 76,
      contract: { kind: 'tracing', spanParentId: parent, endpoints: [collector.url] },
    },
  });
  await collector.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  const jobSpan = collector.spans.find((s) => s.name === 'job_execution')!;
  t.equal(jobSpan.traceId, gitlabTraceId(76), 'the root pipeline trace');
  t.equal(jobSpan.parentSpanId, parent, 'under the trigger job');
});

t.test("the shape the EE code read sends: every job under Rails' job_running span, one {url} object", async (t) => {
  // docs/runner-protocol.md#trace-ids: span_parent_id on a top-level job too, and the endpoint as an object without auth.
  const { lab, collector } = await gitlab19Lab(t);
  const runner = lab.runner();
  const parent = railsJobRunningSpanId(1975306, 19021);
  const job = await runLabJob(lab, runner, {
    payload: {
      id: 19021,
      pipelineId: 1975306,
      contract: { kind: 'tracing', spanParentId: parent, endpoints: [{ url: collector.url }] },
    },
  });
  await collector.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  const jobSpan = collector.spans.find((s) => s.name === 'job_execution')!;
  t.equal(jobSpan.traceId, gitlabTraceId(1975306), "GitLab's trace");
  t.equal(jobSpan.parentSpanId, parent, "under Rails' job_running span");
  t.ok(
    collector.spans.filter((s) => s.name !== 'job_execution').every((s) => s.parentSpanId === jobSpan.spanId),
    'stages under the job',
  );
  t.equal(job.received.variables.TRACEPARENT, `00-${jobSpan.traceId}-${jobSpan.spanId}-01`, 'TRACEPARENT points at the job span');
  t.notOk(
    'tracing' in (job.received.payload.features as object),
    "the runner's native span is replaced: the proxy serves the object endpoint",
  );
});

t.test('span_parent_id empty or null: a root span, like absent', async (t) => {
  const { lab, collector } = await gitlab19Lab(t);
  for (const [id, spanParentId] of [
    [19003, ''],
    [19004, null],
  ] as const) {
    await runLabJob(lab, lab.runner(), { payload: { id, contract: { kind: 'tracing', spanParentId, endpoints: [collector.url] } } });
  }
  await collector.waitFor((s) => s.filter((x) => x.name === 'job_execution').length === 2, 10_000);
  for (const s of collector.spans.filter((x) => x.name === 'job_execution'))
    t.equal(s.parentSpanId, '', `job ${String(s.attributes['ci.job.id'])}: no parent`);
});

t.test('a malformed span_parent_id: a root span in the trace, with one warning', async (t) => {
  const log = memoryLogger();
  const { lab, collector } = await gitlab19Lab(t, { log });
  await runLabJob(lab, lab.runner(), {
    payload: { id: 19011, pipelineId: 5, contract: { kind: 'tracing', spanParentId: '0'.repeat(16), endpoints: [collector.url] } },
  });
  await collector.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  const jobSpan = collector.spans.find((s) => s.name === 'job_execution')!;
  t.equal(jobSpan.traceId, gitlabTraceId(5));
  t.equal(jobSpan.parentSpanId, '', 'no parent');
  t.equal(log.lines.filter((l) => /span_parent_id is all zeros/.test(l.msg)).length, 1, 'one warning');
});

t.test('an endpoint the proxy cannot serve keeps features.tracing for the runner (narrowed), logged once and counted', async (t) => {
  const log = memoryLogger();
  const { lab, collector } = await gitlab19Lab(t, { log });
  const unservable = { url: 'https://otel.example:4318/v1/traces', auth: { type: 'http_bearer_future_idp', http_bearer_future_idp: {} } };
  const job = await runLabJob(lab, lab.runner(), {
    payload: { id: 19005, contract: { kind: 'tracing', endpoints: [collector.url, unservable] } },
  });
  const tracing = (job.received.payload.features as { tracing?: { trace_id: string; otel_endpoints: unknown[] } }).tracing;
  t.ok(tracing, 'the runner still gets features.tracing');
  t.same(tracing?.otel_endpoints, [unservable], 'with only the endpoint the proxy cannot serve, byte for byte');
  await collector.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  t.pass('the endpoint the proxy can serve gets our spans');
  const lines = log.lines.filter((l) => /left to the runner/.test(l.msg));
  t.equal(lines.length, 1, 'one log line');
  t.match(lines[0], { level: 'warn', fields: { job_id: 19005, endpoints: 'https://otel.example:4318 (unsupported_auth)' } });
  t.notOk(JSON.stringify(lines).includes('/v1/traces'), 'no URL path in the log');
  const metrics = await lab.proxy.registry.metrics();
  t.equal(metric(metrics, 'gitlab_otel_payload_endpoints_left_to_runner_total{reason="unsupported_auth"}'), 1);
});

t.test('only unservable endpoints: GitLab bytes reach the runner untouched', async (t) => {
  const { lab } = await gitlab19Lab(t);
  const runner = lab.runner();
  await runLabJob(lab, runner, {
    payload: { id: 19006, contract: { kind: 'tracing', endpoints: [{ url: 'ftp://collector.example/v1/traces' }] } },
  });
  const upstream = lab.gitlab.exchanges.find((e) => e.status === 201)!;
  const got = runner.sent.find((e) => e.status === 201)!;
  const delivered = JSON.parse(got.rawBody.toString()) as { features: { tracing: unknown }; variables: { key: string }[] };
  const original = JSON.parse(upstream.responseBody.toString()) as { features: { tracing: unknown } };
  t.same(delivered.features.tracing, original.features.tracing, 'features.tracing as GitLab sent it');
  t.ok(
    delivered.variables.some((v) => v.key === 'TRACEPARENT'),
    'the job still has telemetry (TRACEPARENT injected)',
  );
});

t.test("a string endpoint left to the runner arrives as an object the runner's decoder accepts", async (t) => {
  const { lab } = await gitlab19Lab(t);
  const url = 'ftp://collector.example/v1/traces';
  // The runner simulator fails the job request, as the runner's Go decoder does, if a string entry reaches it.
  const job = await runLabJob(lab, lab.runner(), { payload: { id: 19012, otelEndpoints: [url] } });
  t.same((job.received.payload.features as { tracing: { otel_endpoints: unknown } }).tracing.otel_endpoints, [{ url }]);
  t.equal(job.result.finalStatus, 200);
});

t.test('an invalid trace_id: telemetry off, one warning, the payload untouched', async (t) => {
  const log = memoryLogger();
  const { lab, collector } = await gitlab19Lab(t, { log });
  const runner = lab.runner();
  await runLabJob(lab, runner, {
    // Endpoints as objects: with telemetry off the payload is not edited, and string entries would fail the runner's decode.
    payload: { id: 19007, contract: { kind: 'tracing', traceId: 'not-a-trace-id', endpoints: [{ url: collector.url }] } },
  });
  const upstream = lab.gitlab.exchanges.find((e) => e.status === 201)!;
  t.same(runner.sent.find((e) => e.status === 201)!.rawBody, upstream.responseBody, "the runner got GitLab's bytes");
  t.equal(log.lines.filter((l) => /trace_id/.test(l.msg)).length, 1, 'one warning');
  await lab.proxy.pipeline.flush(2000);
  t.equal(collector.spans.length, 0, 'no spans');
});

t.test('fallback jobs: trace ids join GitLab trace by default, instance-scoped on request', async (t) => {
  const lab = await startLab({ proxyConfig: { telemetry: { negotiation: 'payload-or-variable' } } });
  t.teardown(() => lab.stop());
  await runLabJob(lab, lab.runner(), { payload: { id: 19008, pipelineId: 1975306, contract: { kind: 'variable' } } });
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  t.equal(lab.receiver!.spans.find((s) => s.name === 'job_execution')!.traceId, '000000000000000000000000001e240a');

  const scoped = await startLab({ proxyConfig: { telemetry: { negotiation: 'payload-or-variable', trace_ids: 'instance-scoped' } } });
  t.teardown(() => scoped.stop());
  await runLabJob(scoped, scoped.runner(), { payload: { id: 19009, pipelineId: 1975306, contract: { kind: 'variable' } } });
  await scoped.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  t.not(scoped.receiver!.spans.find((s) => s.name === 'job_execution')!.traceId, '000000000000000000000000001e240a');
});

t.test('Job Router: discovery answered 501 by the proxy; the runner falls back to job requests through it', async (t) => {
  const log = memoryLogger();
  const lab = await startLab({ gitlab: { jobRouterServerUrl: 'https://kas.example:8150' }, log });
  t.teardown(() => lab.stop());
  const runner = lab.runner({ jobRouter: true });
  const job = await runLabJob(lab, runner, { payload: { id: 19010 } });
  t.equal(runner.routerDiscovery?.status, 501, 'the runner saw 501');
  t.equal(runner.routerDiscovery?.serverUrl, undefined);
  t.notOk(
    lab.gitlab.exchanges.some((e) => e.path.includes('/runners/router/discovery')),
    'the discovery call never reached GitLab',
  );
  t.equal(job.result.finalStatus, 200, 'the job came through POST /jobs/request');
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  t.equal(log.lines.filter((l) => /Job Router discovery/.test(l.msg)).length, 1, 'one log line');
  t.equal(metric(await lab.proxy.registry.metrics(), 'gitlab_otel_router_discovery_declined_total'), 1, 'counted');
});

t.test('Job Router with job_router: pass: discovery reaches GitLab, and router jobs bypass the proxy', async (t) => {
  const lab = await startLab({ gitlab: { jobRouterServerUrl: 'https://kas.example:8150' }, proxyConfig: { job_router: 'pass' } });
  t.teardown(() => lab.stop());
  const runner = lab.runner({ jobRouter: true });
  t.equal(await runner.requestJob(), null, 'no HTTP job: the runner would use the router');
  t.equal(runner.routerDiscovery?.serverUrl, 'https://kas.example:8150');
  t.equal(lab.gitlab.exchanges.filter((e) => e.path.includes('/runners/router/discovery')).length, 1, 'GitLab answered discovery');
  t.equal(lab.gitlab.exchanges.filter((e) => e.path === '/api/v4/jobs/request').length, 0, 'no job request through the proxy');
});
