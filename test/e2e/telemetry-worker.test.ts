// telemetry.thread: worker (docs/architecture.md#telemetry-thread): the same job path with tracking, the
// journal, export and CI/CD metrics in the telemetry worker; /healthz and /metrics from its snapshots; a
// worker that dies costs the runner nothing and is restarted.
import t from 'tap';
import http from 'node:http';
import { memoryLogger } from '../support/memory-logger.js';
import { startLab, runLabJob } from '../../src/lab/lab.js';
import { traceparent } from '../../src/telemetry/spans.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

t.test('worker thread: job_execution and stage spans reach the collector, the runner gets the edited payload', async (t) => {
  const log = memoryLogger();
  const lab = await startLab({ log, proxyConfig: { telemetry: { thread: 'worker' } } });
  t.teardown(() => lab.stop());
  t.equal(lab.proxy.thread, 'worker');
  const job = await runLabJob(lab, lab.runner(), {
    payload: { id: 5001, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
    scenario: 'success',
  });
  t.equal(job.result.finalStatus, 200);
  await lab.receiver!.waitForSpans(1 + job.log.sections.length, 10_000);
  const jobSpan = lab.receiver!.spans.find((s) => s.name === 'job_execution')!;
  t.equal(jobSpan.traceId, TRACE);
  t.equal(jobSpan.parentSpanId, PARENT);
  t.equal(job.received.variables.TRACEPARENT, traceparent(TRACE, jobSpan.spanId), 'TRACEPARENT names the job span the worker exported');
  t.equal(jobSpan.startTimeUnixNano, job.log.firstTimestamp, 'timed from the log the worker parsed');
  for (const stage of job.log.sections.filter((s) => s.kind === 'stage')) {
    const span = lab.receiver!.spans.filter((s) => s.name === stage.name && s.attributes['ci.stage.attempt'] === stage.attempt);
    t.equal(span.length, 1, `stage ${stage.name} exported once`);
    t.equal(span[0]!.parentSpanId, jobSpan.spanId);
  }
  t.notOk(log.lines.some((l) => l.level === 'error'), 'no errors logged');
});
