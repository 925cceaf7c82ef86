// export/otlp-grpc.ts: one OTLP/gRPC Export call against the real loopback
// OTLP receiver (src/telemetry/receiver.ts, a grpc-js server decoding the
// protobuf). Each outcome the endpoint's retry loop relies on: ok, partial
// success, a status with RetryInfo, UNAUTHENTICATED, a deadline, static headers
// and a bearer token in the per-call metadata over loopback plaintext.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { planChannel } from '../../../src/telemetry/auth/channel.js';
import { OtlpGrpcClient } from '../../../src/telemetry/export/otlp-grpc.js';
import { serializeSpans } from '../../../src/telemetry/export/otlp-transport.js';
import { toReadableSpan } from '../../../src/telemetry/spans.js';
import { TokenError, type IssuedToken, type TokenSource } from '../../../src/telemetry/auth/token.js';
import { OtlpReceiver, type ExportAnswer } from '../../../src/telemetry/receiver.js';
import { endpointSettings, makeSpans, resource } from '../../support/export.js';

const body = (n: number) => serializeSpans(makeSpans(n).map((s) => toReadableSpan(s, resource)));

async function setup(
  t: { teardown(fn: () => unknown): void },
  answers: ExportAnswer[],
  over: Parameters<typeof endpointSettings>[2] = {},
  source?: TokenSource,
) {
  const receiver = await new OtlpReceiver({ behaviour: (_c, i) => answers[i] ?? { kind: 'ok' } }).start();
  t.teardown(() => receiver.stop());
  const settings = endpointSettings('grpc-test', receiver.url, over);
  const client = new OtlpGrpcClient(source ? planChannel(settings, {}, source) : planChannel(settings), settings.headers);
  t.teardown(() => client.close());
  return { receiver, client };
}

t.test('ok, partial success and a retryable status with RetryInfo, each classified', async (t) => {
  const { receiver, client } = await setup(t, [
    { kind: 'ok' },
    { kind: 'partial', rejectedSpans: 2, message: 'too old' },
    { kind: 'error', code: grpc.status.UNAVAILABLE, details: 'overloaded', retryDelayMs: 1500 },
    { kind: 'error', code: grpc.status.INVALID_ARGUMENT, details: 'bad' },
  ]);
  t.same(await client.export(body(3), 5000), { kind: 'ok' });
  t.equal(receiver.spans.length, 3, 'the spans reached the collector');
  t.same(await client.export(body(2), 5000), { kind: 'partial', rejectedSpans: 2, message: 'too old' });
  t.match(await client.export(body(1), 5000), {
    kind: 'error',
    code: 'UNAVAILABLE',
    failure: 'retryable',
    retryDelayMs: 1500,
    message: 'UNAVAILABLE: overloaded',
  });
  const permanent = await client.export(body(1), 5000);
  t.match(permanent, { kind: 'error', code: 'INVALID_ARGUMENT' });
  t.notMatch(permanent, { failure: 'retryable' });
  t.notOk('retryDelayMs' in permanent, 'no RetryInfo, no delay');
});

t.test('a collector slower than the deadline is DEADLINE_EXCEEDED, never a hang', async (t) => {
  const { client } = await setup(t, [{ kind: 'delay', ms: 3000 }]);
  t.match(await client.export(body(1), 200), { kind: 'error', code: 'DEADLINE_EXCEEDED' });
});

t.test('static headers and the bearer token travel in the call metadata; invalidateToken forces a new token', async (t) => {
  let n = 0;
  const source: TokenSource = { kind: 'test_source', fetch: async (): Promise<IssuedToken> => ({ value: `tok-${++n}` }) };
  const { receiver, client } = await setup(t, [], { headers: { 'x-tenant': 'ci' } }, source);
  t.same(await client.export(body(1), 5000), { kind: 'ok' });
  t.same(receiver.calls[0]!.metadata.get('x-tenant'), ['ci']);
  t.same(receiver.calls[0]!.metadata.get('authorization'), ['Bearer tok-1']);
  t.equal(client.currentToken(), 'tok-1');
  client.invalidateToken();
  t.equal(client.currentToken(), undefined);
  await client.export(body(1), 5000);
  t.same(receiver.calls[1]!.metadata.get('authorization'), ['Bearer tok-2']);
});

t.test('a token that cannot be obtained is UNAUTHENTICATED without a call', async (t) => {
  const source: TokenSource = {
    kind: 'test_source',
    fetch: () => Promise.reject(new TokenError('TOKEN_FETCH_FAILED', 'test_source: identity provider answered HTTP 503')),
  };
  const { receiver, client } = await setup(t, [], {}, source);
  t.match(await client.export(body(1), 5000), { kind: 'error', code: 'UNAUTHENTICATED', message: /HTTP 503/ });
  t.equal(receiver.calls.length, 0);
});
