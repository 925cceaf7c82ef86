// A valid journal record, built the way the tracker builds one (a real job
// payload read by readJobPayload, a real log-spans snapshot), for the journal
// tests and for journals "left by an earlier process".
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import { journalView, type JournalledJob } from '../../src/runner-proxy/job/journal.js';
import { LogSpans } from '../../src/runner-proxy/job-log/log-spans.js';
import { readJobPayload } from '../../src/runner-proxy/wire/payload.js';
import { frameRecord } from '../../src/telemetry/export/record-file.js';

export const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
export const PARENT = '00f067aa0ba902b7';

export function sampleRecord(over: Partial<JournalledJob> = {}, jobId = 8002): JournalledJob {
  const view = readJobPayload(
    makeJobPayload({
      id: jobId,
      contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT, endpoints: ['grpc://127.0.0.1:4317'] },
    }),
  );
  if (!view.ok) throw new Error(view.problem);
  const jobSpanId = 'a1a2a3a4a5a6a7a8';
  const logSpans = new LogSpans({ traceId: TRACE, jobSpanId, maxSpans: 100, maxAttributeLength: 100 }, () => undefined);
  return {
    v: 1,
    job: journalView(view.value),
    runner: { version: '19.4.0', executor: 'docker' },
    contract: 'tracing',
    traceId: TRACE,
    jobSpanId,
    parentSpanId: PARENT,
    assignedAt: '1795305922000000000',
    canceled: false,
    deadline: Date.now() + 3_600_000,
    endpoints: ['lab'],
    payloadEndpoints: [{ url: 'grpc://127.0.0.1:4317' }],
    sampled: true,
    log: logSpans.snapshot(),
    ...over,
  };
}

/** Appends a put entry with any content, as another version of the proxy might have written it. */
export function appendRawPut(journalDir: string, jobId: string, s: unknown): void {
  mkdirSync(journalDir, { recursive: true });
  appendFileSync(join(journalDir, 'jobs.journal'), frameRecord(Buffer.from(JSON.stringify({ t: 'p', job: jobId, s }))));
}
