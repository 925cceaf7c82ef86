// An OTLP/gRPC collector in its own process for the benchmarks, so decoding
// spans does not compete with the runner simulators in the bench process.
// argv: PORT (0 = any). Sends {port} when listening; answers 'count' with {spans}.
import { OtlpReceiver } from '../src/telemetry/receiver.js';

let spans = 0;
const receiver = await new OtlpReceiver({
  port: Number(process.argv[2] ?? 0),
  onSpans: (received) => {
    spans += received.length;
  },
}).start();
// Only the count matters here; do not keep every span for a long benchmark.
receiver.spans.length = 0;
setInterval(() => {
  receiver.spans.length = 0;
  receiver.calls.length = 0;
}, 1000).unref();
process.on('message', (msg) => {
  if (msg === 'count') process.send!({ spans });
});
process.send!({ port: receiver.port });
