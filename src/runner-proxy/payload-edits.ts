// The only changes the proxy makes to what crosses it, each done in place on
// the raw JSON text (see json-text.ts) so that every other byte is untouched
// and every edited value has exactly the runner's Go type:
//   - job request: `info.features.job_telemetry: true` (the seed contract's advertisement);
//   - job payload: `features.tracing` removed (runner ≥ 19 would emit a second
//     job_execution span), and TRACEPARENT / TRACESTATE (and optionally an
//     OTLP endpoint) appended to `variables` as public, unmasked variables.
import { appendElement, insertFirstMember, locate, removeMember } from './json-text.js';

export interface JobVariableEdit {
  key: string;
  value: string;
}

export interface PayloadEdits {
  removeNativeTracing: boolean;
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

/** Applies the edits to a job payload's text; returns undefined when nothing changes. */
export function editJobPayload(text: string, edits: PayloadEdits): string | undefined {
  let out = text;
  if (edits.removeNativeTracing) {
    const tracing = locate(out, ['features', 'tracing']);
    if (tracing) out = removeMember(out, tracing);
  }
  if (edits.variables.length > 0) {
    const vars = locate(out, ['variables']);
    if (vars && out[vars.start] === '[') {
      for (const v of edits.variables) {
        const arr = locate(out, ['variables'])!;
        out = appendElement(out, arr.start, variableJson(v));
      }
    }
  }
  return out === text ? undefined : out;
}
