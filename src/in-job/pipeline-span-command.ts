// `gitlab-otel pipeline-span [--result RESULT]`, run by the job-telemetry
// component's `.post` jobs.
//
// In fallback mode (GitLab sends no telemetry contract) the proxy parents every
// job span to a pipeline root span whose ids anyone can derive from the
// instance URL and the root pipeline id; this command exports that root span,
// so the whole pipeline is one trace. By default the trace id is GitLab's own
// derivation (docs/runner-protocol.md#trace-ids), so when GitLab does send a
// contract the span lands in GitLab's trace too. When the job's TRACEPARENT
// names a different trace (instance-scoped ids, or a child pipeline that was
// not told its root), exporting ours would only add an orphan trace, so we
// skip. Exit 0 whenever telemetry fails: a `.post` job must not turn a
// pipeline red because a collector is down.
import { parseArgs } from 'node:util';
import { ERROR_TYPE } from '../telemetry/attributes.js';
import { nowNanos, SpanKind, SpanStatusCode, type SpanRecord } from '../telemetry/spans.js';
import { isoToNanos, isPipelineResult, pipelineAttributes, pipelineName, PIPELINE_RESULTS, type PipelineResult } from './ci-attributes.js';
import { DEFAULT_EXPORT_TIMEOUT_MS, exportJobSpans, planJobExport } from './job-export.js';
import { parseTraceparent, pipelineRootContext, type Env } from './trace-context.js';

const USAGE = `Usage: gitlab-otel pipeline-span [--result RESULT] [--id-token-variable VAR] [--timeout-ms N]

Exports the pipeline's root span (the parent of every job span in fallback mode).
  --result RESULT           ${PIPELINE_RESULTS.join(' | ')} (default success)
  --id-token-variable VAR   GitLab id_tokens variable holding the collector's bearer token
  --timeout-ms N            export bound (default ${DEFAULT_EXPORT_TIMEOUT_MS})
Reads CI_SERVER_URL, CI_PIPELINE_ID, CI_PIPELINE_CREATED_AT and the other predefined CI variables;
GITLAB_OTEL_ROOT_PIPELINE_ID (a child pipeline's root) and GITLAB_OTEL_TRACE_IDS (gitlab | instance-scoped).
`;

export type PipelineSpanDecision =
  { readonly kind: 'export'; readonly span: SpanRecord } | { readonly kind: 'skip'; readonly reason: string };

/** Pure: what to export for this pipeline, given the job's environment and the current time. */
export function decidePipelineSpan(env: Env, result: PipelineResult, now: bigint): PipelineSpanDecision {
  const root = pipelineRootContext(env);
  if (!root) return { kind: 'skip', reason: 'CI_SERVER_URL and a numeric CI_PIPELINE_ID are required' };
  const injected = parseTraceparent(env.TRACEPARENT);
  if (injected && injected.traceId !== root.traceId) {
    return { kind: 'skip', reason: "GitLab provides this pipeline's trace (telemetry contract); no fallback root span needed" };
  }
  const start = isoToNanos(env.CI_PIPELINE_CREATED_AT) ?? isoToNanos(env.CI_JOB_STARTED_AT) ?? now;
  const failed = result !== 'success' && result !== 'skip';
  const attributes = pipelineAttributes(env, result);
  if (failed) attributes[ERROR_TYPE] = result;
  return {
    kind: 'export',
    span: {
      traceId: root.traceId,
      spanId: root.spanId,
      // semconv cicd.pipeline.run.server: `{action} {pipeline}`.
      name: `RUN ${pipelineName(env)}`,
      kind: SpanKind.SERVER,
      startTimeUnixNano: start,
      endTimeUnixNano: now > start ? now : start,
      attributes,
      status: failed ? { code: SpanStatusCode.ERROR, message: `pipeline ${result}` } : { code: SpanStatusCode.UNSET },
    },
  };
}

export async function pipelineSpanCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        result: { type: 'string' },
        'id-token-variable': { type: 'string' },
        'timeout-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`gitlab-otel pipeline-span: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const result = values.result ?? 'success';
  if (!isPipelineResult(result)) {
    process.stderr.write(`gitlab-otel pipeline-span: --result must be one of ${PIPELINE_RESULTS.join(', ')}\n`);
    return 2;
  }
  const timeoutMs = values['timeout-ms'] === undefined ? DEFAULT_EXPORT_TIMEOUT_MS : Number(values['timeout-ms']);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    process.stderr.write('gitlab-otel pipeline-span: --timeout-ms must be a positive integer\n');
    return 2;
  }
  const env: Env = process.env;
  const decision = decidePipelineSpan(env, result, nowNanos());
  if (decision.kind === 'skip') {
    process.stdout.write(`gitlab-otel pipeline-span: skipped: ${decision.reason}\n`);
    return 0;
  }
  const plan = planJobExport(env, { idTokenVariable: values['id-token-variable'], timeoutMs });
  if (plan.kind === 'off') {
    process.stdout.write(`gitlab-otel pipeline-span: not exported: ${plan.reason}\n`);
    return 0;
  }
  for (const note of plan.notes) process.stderr.write(`gitlab-otel pipeline-span: ${note}\n`);
  const outcome = await exportJobSpans([decision.span], plan);
  if (!outcome.ok) {
    process.stderr.write(`gitlab-otel pipeline-span: not exported to ${plan.endpoint.name}: ${outcome.reason}\n`);
    return 0;
  }
  process.stdout.write(
    `gitlab-otel pipeline-span: exported '${decision.span.name}' (${result}) trace_id=${decision.span.traceId} span_id=${decision.span.spanId}\n`,
  );
  return 0;
}

export default pipelineSpanCommand;
