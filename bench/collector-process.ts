// An OTLP collector in its own process for the benchmarks (gRPC and HTTP
// receivers), so decoding spans does not compete with the runner simulators in
// the bench process.
// argv: GRPC_PORT HTTP_PORT (0 = any). Sends {grpcPort, httpPort} when listening.
// Messages: 'count' → {spans, distinct, grpc, http}: every span accepted, and the
// number of distinct span ids (a duplicate cannot hide a loss); 'down' → refuses
// every call in progress (UNAVAILABLE / 503, nothing acknowledged) and closes its
// listeners, so the proxy sees connection refused as from a dead collector, then
// {down: true}; 'up' → listens again on the same ports, then {up: true}. The
// counts survive an outage.
import { status } from '@grpc/grpc-js';
import { OtlpHttpReceiver, OtlpReceiver, type ReceivedSpan } from '../src/telemetry/receiver.js';

let spans = 0;
const byTransport = { grpc: 0, http: 0 };
const ids = new Set<string>();
let down = false;
const count = (received: ReceivedSpan[], transport: 'grpc' | 'http'): void => {
  spans += received.length;
  byTransport[transport] += received.length;
  for (const s of received) ids.add(`${s.traceId}${s.spanId}`);
};

async function listen(grpcPort: number, httpPort: number): Promise<{ grpc: OtlpReceiver; http: OtlpHttpReceiver }> {
  const grpc = await new OtlpReceiver({
    port: grpcPort,
    behaviour: () => (down ? { kind: 'error', code: status.UNAVAILABLE, details: 'collector down' } : { kind: 'ok' }),
    onSpans: (r) => count(r, 'grpc'),
  }).start();
  const http = await new OtlpHttpReceiver({
    port: httpPort,
    behaviour: () => (down ? { kind: 'status', status: 503 } : { kind: 'ok' }),
    onSpans: (r) => count(r, 'http'),
  }).start();
  return { grpc, http };
}

let receivers = await listen(Number(process.argv[2] ?? 0), Number(process.argv[3] ?? 0));
const ports = { grpcPort: receivers.grpc.port, httpPort: receivers.http.port };
// Only the counts matter here; do not keep every span for a long benchmark.
const clear = (): void => {
  const { grpc, http } = receivers;
  grpc.spans.length = 0;
  grpc.calls.length = 0;
  http.spans.length = 0;
  http.calls.length = 0;
  http.refusals.length = 0;
};
clear();
setInterval(clear, 1000).unref();
process.on('message', (msg) => {
  if (msg === 'count') process.send!({ spans, distinct: ids.size, ...byTransport });
  if (msg === 'down') {
    down = true;
    void Promise.all([receivers.grpc.stop(), receivers.http.stop()]).then(() => process.send!({ down: true }));
  }
  if (msg === 'up') {
    down = false;
    void listen(ports.grpcPort, ports.httpPort).then((r) => {
      receivers = r;
      process.send!({ up: true });
    });
  }
});
process.send!(ports);
