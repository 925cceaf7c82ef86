// The only changes the proxy makes to what crosses it, each done in place on
// the raw JSON text (see json-text.ts) so that every other byte is untouched
// and every edited value has exactly the runner's Go type:
//   - job request: `info.features.job_telemetry: true` (the seed contract's advertisement);
//   - job payload: `features.tracing` removed where the proxy serves all of
//     GitLab's collectors (runner ≥ 19 would emit a second job_execution
//     span), or its `otel_endpoints` narrowed to the ones the runner still
//     serves (docs/runner-protocol.md#job-telemetry); and TRACEPARENT /
//     TRACESTATE (and optionally an OTLP endpoint) appended to `variables` as
//     public, unmasked variables.
import {
  append,
  applyEdits,
  arrayElements,
  insertFirstMember,
  locate,
  objectMembers,
  removal,
  rootStart,
  type MemberSpan,
  type TextEdit,
} from './json-text.js';
import type { RunnerTracing } from './negotiation.js';

export interface JobVariableEdit {
  key: string;
  value: string;
}

export interface PayloadEdits {
  tracing: RunnerTracing;
  variables: JobVariableEdit[];
}

/** Adds `job_telemetry: true` to `info.features`; returns undefined when nothing needs to change or the shape is unexpected. */
export function advertiseJobTelemetry(text: string): string | undefined {
  const features = locate(text, ['info', 'features']);
  if (!features || text[features.start] !== '{') return undefined;
  const existing = locate(text, ['info', 'features', 'job_telemetry']);
  if (existing) {
    if (text.slice(existing.start, existing.end) === 'true') return undefined;
    return `${text.slice(0, existing.start)}true${text.slice(existing.end)}`;
  }
  return insertFirstMember(text, features.start, '"job_telemetry":true');
}

function variableJson(v: JobVariableEdit): string {
  return JSON.stringify({ key: v.key, value: v.value, public: true, masked: false });
}

/**
 * Applies the edits to a job payload's text; returns undefined when nothing
 * changes. One pass over the root object finds both places (the payload can be
 * hundreds of KiB and the runner is waiting for it).
 */
export function editJobPayload(text: string, edits: PayloadEdits): string | undefined {
  const start = rootStart(text);
  if (text[start] !== '{') return undefined;
  const root = objectMembers(text, start);
  const changes: TextEdit[] = [];
  const features = root.get('features');
  if (edits.tracing.action !== 'keep' && features && text[features.start] === '{') {
    const tracing = objectMembers(text, features.start).get('tracing');
    if (tracing && edits.tracing.action === 'remove') changes.push(removal(text, tracing));
    if (tracing && edits.tracing.action === 'narrow') {
      const change = narrowEndpoints(text, tracing, edits.tracing.keep);
      if (change) changes.push(change);
    }
  }
  const variables = root.get('variables');
  if (edits.variables.length > 0 && variables && text[variables.start] === '[') {
    changes.push(append(text, variables, edits.variables.map(variableJson).join(',')));
  }
  return changes.length === 0 ? undefined : applyEdits(text, changes);
}

/**
 * `features.tracing.otel_endpoints` with only the entries at `keep`: objects
 * byte for byte, strings as `{"url": …}` (the runner's struct decodes objects
 * only; docs/runner-protocol.md#job-telemetry).
 */
function narrowEndpoints(text: string, tracing: MemberSpan, keep: readonly number[]): TextEdit | undefined {
  if (text[tracing.start] !== '{') return undefined;
  const list = objectMembers(text, tracing.start).get('otel_endpoints');
  if (!list || text[list.start] !== '[') return undefined;
  const elements = arrayElements(text, list.start);
  const kept = keep.flatMap((i) => {
    const e = elements[i];
    if (!e) return [];
    const raw = text.slice(e.start, e.end);
    return [raw.startsWith('"') ? `{"url":${raw}}` : raw];
  });
  return { from: list.start, to: list.end, insert: `[${kept.join(',')}]` };
}
