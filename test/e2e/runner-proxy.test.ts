import t from 'tap';
import { memoryLogger } from '../support/memory-logger.js';
import { startLab, runLabJob } from '../../src/lab/lab.js';
import { traceparent } from '../../src/telemetry/spans.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

// Both telemetry threads run the same job path (docs/architecture.md#telemetry-thread).
for (const thread of ['main', 'worker'] as const) {
  t.test(`shipped contract (telemetry.thread: ${thread}): job_execution and stage spans, parented and timed from the log`, async (t) => {
    const log = memoryLogger();
    const lab = await startLab({ log, proxyConfig: { telemetry: { thread } } });
    t.teardown(() => lab.stop());
    const runner = lab.runner();
    const job = await runLabJob(lab, runner, {
      payload: { id: 1001, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
      scenario: 'success',
    });
    t.equal(job.result.finalStatus, 200);
    const stages = job.log.sections.filter((s) => s.kind === 'stage');
    await lab.receiver!.waitForSpans(1 + job.log.sections.length, 10_000);
    const spans = lab.receiver!.spans;
    t.equal(spans.length, 1 + job.log.sections.length, 'one job span and one span per section, no more');
    const jobSpan = spans.find((s) => s.name === 'job_execution');
    t.ok(jobSpan, 'job_execution exported');
    t.equal(jobSpan!.traceId, TRACE);
    t.equal(jobSpan!.parentSpanId, PARENT);
    t.equal(jobSpan!.kind, 1);
    t.equal(jobSpan!.status.code, 0);
    t.match(jobSpan!.attributes, { 'ci.job.id': 1001, 'ci.job.status': 'success', 'cicd.pipeline.task.run.result': 'success' });
    t.equal(job.received.variables.TRACEPARENT, traceparent(TRACE, jobSpan!.spanId), 'TRACEPARENT names our job span');
    t.equal(jobSpan!.startTimeUnixNano, job.log.firstTimestamp, 'job span starts at the first log stamp');
    for (const stage of stages) {
      // Exactly one span per stage and attempt: matched on both, with no looser fallback.
      const matching = spans.filter((s) => s.name === stage.name && s.attributes['ci.stage.attempt'] === stage.attempt);
      t.equal(matching.length, 1, `stage ${stage.name} attempt ${stage.attempt} exported once`);
      const span = matching[0];
      t.equal(span!.parentSpanId, jobSpan!.spanId, `${stage.name} is a child of job_execution`);
      t.equal(span!.startTimeUnixNano, stage.startNs, `${stage.name} start`);
      t.equal(span!.endTimeUnixNano, stage.endNs, `${stage.name} end`);
    }
    t.notOk(
      log.lines.some((l) => l.level === 'error'),
      'no errors logged',
    );
  });

  t.test(`no contract (telemetry.thread: ${thread}): no spans, payload forwarded untouched`, async (t) => {
    const lab = await startLab({ proxyConfig: { telemetry: { thread } } });
    t.teardown(() => lab.stop());
    const runner = lab.runner();
    const job = await runLabJob(lab, runner, { payload: { id: 1002, contract: { kind: 'none' } } });
    t.equal(job.result.finalStatus, 200);
    await lab.proxy.pipeline.flush(2000);
    t.equal(lab.receiver!.spans.length, 0);
    const sent = lab.gitlab.exchanges.find((e) => e.status === 201)!;
    const got = runner.sent.find((e) => e.status === 201)!;
    t.same(got.rawBody, sent.responseBody, "the runner got GitLab's bytes");
    t.notOk('TRACEPARENT' in job.received.variables);
  });

  t.test(`failed job (telemetry.thread: ${thread}): ERROR on the job span and on the failing stage`, async (t) => {
    const lab = await startLab({ proxyConfig: { telemetry: { thread } } });
    t.teardown(() => lab.stop());
    const job = await runLabJob(lab, lab.runner(), {
      payload: { id: 1003, contract: { kind: 'job_telemetry', traceId: TRACE, parentSpanId: PARENT } },
      scenario: 'script-failure',
    });
    t.equal(job.result.finalStatus, 200);
    await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
    const jobSpan = lab.receiver!.spans.find((s) => s.name === 'job_execution')!;
    t.equal(jobSpan.status.code, 2);
    t.match(jobSpan.attributes, { 'ci.job.status': 'failed', 'ci.job.failure_reason': 'script_failure', 'error.type': 'script_failure' });
    const step = lab.receiver!.spans.find((s) => s.name === 'step_script')!;
    t.equal(step.status.code, 2, 'step_script is the failing stage');
  });
}
