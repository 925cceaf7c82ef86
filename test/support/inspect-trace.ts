// A fixed, realistic trace for the inspector's tests and the manual HTML
// screenshot: a failing `unit-tests` job on the docker executor, with the
// runner's build stages and two user sections inside step_script.
import { CI, CICD, RESOURCE } from '../../src/telemetry/attributes.js';
import { SpanKind, SpanStatusCode, type SpanRecord } from '../../src/telemetry/spans.js';
import type { ReceivedSpan } from '../../src/telemetry/receiver.js';

export const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const JOB = '00f067aa0ba902b7';
const STEP = '1a2b3c4d5e6f7081';
const T0 = 1_700_000_000_000_000_000n;
const s = (seconds: number): bigint => T0 + BigInt(Math.round(seconds * 1e6)) * 1000n;

export const RESOURCE_ATTRIBUTES = {
  [RESOURCE.serviceName]: 'gitlab-otel',
  [RESOURCE.runnerExecutor]: 'docker',
};

const OK = { code: SpanStatusCode.UNSET };

function stage(id: string, name: string, from: number, to: number, extra: Partial<SpanRecord> = {}): SpanRecord {
  return {
    traceId: TRACE_ID,
    spanId: id,
    parentSpanId: JOB,
    name,
    kind: SpanKind.INTERNAL,
    startTimeUnixNano: s(from),
    endTimeUnixNano: s(to),
    attributes: { [CI.stageName]: name, [CI.stageStatus]: 'success' },
    status: OK,
    ...extra,
  };
}

export const FIXTURE_SPANS: readonly SpanRecord[] = [
  {
    traceId: TRACE_ID,
    spanId: JOB,
    parentSpanId: 'b7ad6b7169203331',
    parentIsRemote: true,
    name: 'job_execution',
    kind: SpanKind.INTERNAL,
    startTimeUnixNano: s(0),
    endTimeUnixNano: s(42.5),
    attributes: {
      [CI.jobId]: 4711,
      [CI.jobName]: 'unit-tests',
      [CI.jobStatus]: 'failed',
      [CI.pipelineId]: 99,
      [CICD.taskRunResult]: 'failure',
    },
    status: { code: SpanStatusCode.ERROR, message: 'script_failure' },
  },
  stage('0000000000000a01', 'prepare_executor', 0.012, 3.2),
  stage('0000000000000a02', 'prepare_script', 3.2, 3.9),
  stage('0000000000000a03', 'get_sources', 3.9, 6.4),
  stage('0000000000000a04', 'restore_cache', 6.4, 8.1, {
    attributes: { [CI.stageName]: 'restore_cache', [CI.stageStatus]: 'success', [CI.cacheHit]: true },
  }),
  stage(STEP, 'step_script', 8.1, 38, {
    attributes: { [CI.stageName]: 'step_script', [CI.stageStatus]: 'failed' },
    status: { code: SpanStatusCode.ERROR, message: 'exit code 1' },
  }),
  {
    ...stage('0000000000000b01', 'install_deps', 8.3, 20.1),
    parentSpanId: STEP,
    attributes: { [CI.sectionName]: 'install_deps' },
  },
  {
    ...stage('0000000000000b02', 'unit_tests', 20.1, 37.9),
    parentSpanId: STEP,
    attributes: { [CI.sectionName]: 'unit_tests' },
    status: { code: SpanStatusCode.ERROR, message: '' },
  },
  stage('0000000000000a06', 'after_script', 38, 39.5),
  stage('0000000000000a07', 'archive_cache_on_failure', 39.5, 41),
  stage('0000000000000a08', 'upload_artifacts_on_failure', 41, 42.3),
  stage('0000000000000a09', 'cleanup_file_variables', 42.3, 42.3004),
];

/**
 * What a receiver decodes from these records: OTLP's kind numbering (API kind
 * + 1) and Span.flags (sampled, plus the has-is-remote/is-remote bits).
 */
export function asReceived(records: readonly SpanRecord[], resource: Record<string, string> = RESOURCE_ATTRIBUTES): ReceivedSpan[] {
  return records.map((r) => ({
    traceId: r.traceId,
    spanId: r.spanId,
    parentSpanId: r.parentSpanId ?? '',
    traceState: r.traceState ?? '',
    name: r.name,
    kind: r.kind + 1,
    startTimeUnixNano: r.startTimeUnixNano,
    endTimeUnixNano: r.endTimeUnixNano,
    attributes: { ...(r.attributes as Record<string, string | number | boolean>) },
    status: { code: r.status.code, message: r.status.message ?? '' },
    flags: 0x01 | 0x100 | (r.parentIsRemote ? 0x200 : 0),
    resource: { ...resource },
    scope: { name: 'gitlab-otel', version: '0.1.0' },
  }));
}

/** A received span with neutral defaults, for tests that build small traces by hand. */
export function receivedSpan(over: Partial<ReceivedSpan> & { spanId: string }): ReceivedSpan {
  return {
    traceId: 'a'.repeat(32),
    parentSpanId: '',
    traceState: '',
    name: over.spanId,
    kind: 1,
    startTimeUnixNano: 0n,
    endTimeUnixNano: 0n,
    attributes: {},
    status: { code: 0, message: '' },
    flags: 0x101,
    resource: {},
    scope: { name: 's', version: '' },
    ...over,
  };
}
