// export/egress-grpc.ts: the grpc-js resolver that makes a payload endpoint's
// channel dial only what the egress policy allows (docs/security.md#payload-endpoints),
// exercised through real gRPC calls to the loopback OTLP receiver. A stand-in
// resolve function names the addresses (the system resolver is never asked).
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { EGRESS_GUARD_OPTION, EGRESS_SCHEME, guardedChannel } from '../../../src/telemetry/export/egress-grpc.js';
import { onEgressRefused, type EgressRefusedError, type Resolve } from '../../../src/telemetry/export/egress-policy.js';
import { TRACE_EXPORT_PATH } from '../../../src/telemetry/otlp-proto.js';
import { OtlpReceiver } from '../../../src/telemetry/receiver.js';

const to =
  (ip: string): Resolve =>
  async () => [{ address: ip, family: 4 }];

function exportOnce(target: { target: string; options: Record<string, string> }): Promise<grpc.ServiceError | null> {
  return new Promise((resolve) => {
    const client = new grpc.Client(target.target, grpc.credentials.createInsecure(), target.options);
    client.makeUnaryRequest(
      TRACE_EXPORT_PATH,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
      new grpc.Metadata(),
      { deadline: Date.now() + 3000 },
      (err) => {
        client.close();
        resolve(err);
      },
    );
  });
}

t.test('target and option: the host normalised, IPv6 bracketed, one guard per verdict and resolver', async (t) => {
  const r = to('127.0.0.1');
  const a = guardedChannel(' Collector.Example. ', 4317, { allowed: true, explicit: false }, r);
  t.equal(a.target, `${EGRESS_SCHEME}:collector.example:4317`);
  t.equal(guardedChannel('[2001:db8::1]', '443', { allowed: true, explicit: false }).target, `${EGRESS_SCHEME}:[2001:db8::1]:443`);
  const b = guardedChannel('other.example', 1, { allowed: true, explicit: false }, r);
  t.equal(a.options[EGRESS_GUARD_OPTION], b.options[EGRESS_GUARD_OPTION], 'same verdict and resolver: the same guard');
  const c = guardedChannel('other.example', 1, { allowed: true, explicit: false }, to('127.0.0.1'));
  t.not(a.options[EGRESS_GUARD_OPTION], c.options[EGRESS_GUARD_OPTION], 'another resolver: another guard');
  const d = guardedChannel('other.example', 1, { allowed: true, explicit: true }, r);
  t.not(a.options[EGRESS_GUARD_OPTION], d.options[EGRESS_GUARD_OPTION], 'another verdict: another guard');
});

t.test('at connect time: an allowed name is dialled at its address; a loopback resolution or a refused verdict never dials', async (t) => {
  const receiver = await new OtlpReceiver().start();
  t.teardown(() => receiver.stop());
  const refusals: EgressRefusedError[] = [];
  t.teardown(onEgressRefused((e) => refusals.push(e)));

  t.equal(await exportOnce(guardedChannel('node-collector', receiver.port, { allowed: true, explicit: true }, to('127.0.0.1'))), null);
  t.equal(receiver.calls.length, 1, 'an explicitly allowed host reaches the collector at the address it resolves to');

  const rebinding = await exportOnce(
    guardedChannel('collector.public.example', receiver.port, { allowed: true, explicit: false }, to('127.0.0.1')),
  );
  t.match(rebinding, { code: grpc.status.UNAVAILABLE, details: /refused by the payload endpoint policy \(loopback\)/ });
  const refused = await exportOnce(
    guardedChannel('blocked.example', receiver.port, { allowed: false, reason: 'host_not_allowed' }, to('127.0.0.1')),
  );
  t.match(refused, { code: grpc.status.UNAVAILABLE, details: /host_not_allowed/ });
  t.equal(receiver.calls.length, 1, 'neither refused channel reached the collector');
  // grpc-js may ask the resolver again after a failure, so a refusal can be reported more than once per call.
  t.same(
    [...new Set(refusals.map((r) => `${r.host} ${r.reason}`))].sort(),
    ['blocked.example host_not_allowed', 'collector.public.example loopback'],
    'every refusal is reported to the listeners, the allowed host never',
  );

  const failing: Resolve = () => Promise.reject(new Error('ENOTFOUND'));
  t.match(await exportOnce(guardedChannel('nxdomain.example', receiver.port, { allowed: true, explicit: false }, failing)), {
    code: grpc.status.UNAVAILABLE,
  });
});
