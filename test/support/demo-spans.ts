// Received spans for the demo's pure tests: one span of the demo pipeline's
// trace, 250 ms long, with the given ids, name, attributes and status.
import type { ReceivedSpan } from '../../src/telemetry/receiver.js';

const TRACE_ID = '00000000000000000000000000001092';

export function span(
  spanId: string,
  parentSpanId: string,
  name: string,
  attributes: ReceivedSpan['attributes'] = {},
  error = false,
): ReceivedSpan {
  return {
    traceId: TRACE_ID,
    spanId,
    parentSpanId,
    traceState: '',
    name,
    kind: 1,
    startTimeUnixNano: 1_000_000_000n,
    endTimeUnixNano: 1_250_000_000n,
    attributes,
    status: { code: error ? 2 : 0, message: '' },
    flags: 0,
    resource: {},
    scope: { name: 'gitlab-otel', version: '0' },
  };
}
