// Spans whose names, attributes and status messages try to break out of the
// HTML they are rendered into: what a hostile job log could make the proxy emit.
import type { ReceivedSpan } from '../../src/telemetry/receiver.js';

export const HOSTILE_TRACE_ID = 'c0ffee0000000000000000000000beef';

export const HOSTILE_NAMES = [
  '<script>document.documentElement.setAttribute("data-pwned","1")</script>',
  "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','2')\">",
  '"><svg onload=alert(1)>',
  "' onmouseover='alert(1)",
  'a & b </li></ol></section><h1>injected</h1>',
] as const;

export function hostileSpans(): ReceivedSpan[] {
  const base = {
    traceId: HOSTILE_TRACE_ID,
    traceState: '',
    kind: 1,
    flags: 0x101,
    resource: { 'service.name': '</title><script>alert(1)</script>' },
    scope: { name: 't', version: '' },
  };
  return [
    {
      ...base,
      spanId: '00000000000000f0',
      parentSpanId: '',
      name: 'job_execution',
      startTimeUnixNano: 1_000_000_000n,
      endTimeUnixNano: 6_000_000_000n,
      attributes: { '<b>key</b>': '<iframe src="javascript:alert(1)">' },
      status: { code: 2, message: '</dd><script>alert("status")</script>' },
    },
    ...HOSTILE_NAMES.map((name, i): ReceivedSpan => ({
      ...base,
      spanId: `00000000000000a${i}`,
      parentSpanId: '00000000000000f0',
      name,
      startTimeUnixNano: BigInt(1 + i) * 1_000_000_000n,
      endTimeUnixNano: BigInt(2 + i) * 1_000_000_000n,
      attributes: { [`attr ${name}`]: name },
      status: { code: i % 2 === 0 ? 0 : 2, message: name },
    })),
  ];
}
