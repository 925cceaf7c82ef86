// Finding 3 (issue #16): a job payload chooses where the proxy connects and
// which ID tokens it mints. With the default policy a payload endpoint on a
// loopback listener is never connected to: it is left to the runner (the job
// keeps it in features.tracing), logged once per host and counted. An operator
// lets a node-local collector in by naming it in allowed_hosts. The connect-time
// check (a name resolving to a refused address) is shown on the grpc-js
// resolver and the HTTP agent lookup with a stand-in resolver; only loopback
// addresses are ever dialled (docs/security.md#payload-endpoints).
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { memoryLogger } from '../support/memory-logger.js';
import { startLab, runLabJob } from '../../src/lab/lab.js';
import { OtlpReceiver } from '../../src/telemetry/receiver.js';
import { egressLookup, type Resolve } from '../../src/telemetry/export/egress-policy.js';
import { guardedChannel } from '../../src/telemetry/export/egress-grpc.js';
import { metricValue } from './support.js';

/** A TCP listener on loopback that only counts the connections it gets. */
async function connectionRecorder(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    n++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => n,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

t.test('default policy: a loopback payload endpoint is never dialled, stays with the runner, logged once and counted', async (t) => {
  const recorder = await connectionRecorder();
  t.teardown(() => recorder.close());
  const log = memoryLogger();
  const lab = await startLab({ log });
  t.teardown(() => lab.stop());
  const grpcUrl = `grpc://127.0.0.1:${recorder.port}`;
  const httpUrl = `http://localhost:${recorder.port}/v1/traces`;
  const received = [];
  for (const id of [3301, 3302]) {
    const job = await runLabJob(lab, lab.runner(), {
      payload: { id, contract: { kind: 'tracing', endpoints: [{ url: grpcUrl }, httpUrl] } },
    });
    t.equal(job.result.finalStatus, 200, `job ${id} ran`);
    received.push(job.received);
  }
  await lab.receiver!.waitFor((s) => s.filter((x) => x.name === 'job_execution').length === 2, 10_000);
  await lab.proxy.pipeline.flush(2000);
  t.equal(recorder.connections(), 0, 'the proxy never connected to the loopback listener');
  for (const r of received) {
    const endpoints = (r.payload as any).features?.tracing?.otel_endpoints as { url: string }[];
    t.same(
      endpoints.map((e) => e.url),
      [grpcUrl, httpUrl],
      'the runner keeps both in features.tracing, so its native span still goes there',
    );
  }
  const metrics = await lab.proxy.registry.metrics();
  t.equal(metricValue(metrics, 'gitlab_otel_egress_refused_total', { reason: 'loopback', stage: 'payload' }), 4, 'every refusal counted');
  const lines = log.lines.filter((l) => l.msg.startsWith('payload endpoint refused by the egress policy'));
  t.same(
    lines.map((l) => l.fields?.endpoint).sort(),
    ['grpc://127.0.0.1:' + recorder.port, 'http://localhost:' + recorder.port].sort(),
    'logged once per host',
  );
});

t.test('allowed_hosts naming a node-local collector lets it in; an audience outside allowed_audiences is refused', async (t) => {
  const collector = await new OtlpReceiver({}).start();
  t.teardown(() => collector.stop());
  const port = new URL(collector.url).port;
  const lab = await startLab({
    proxyConfig: {
      telemetry: {
        payload_endpoints: {
          allowed_hosts: [`127.0.0.1:${port}`, 'otel.example.com:443'],
          allowed_audiences: ['https://otel.example.com'],
        },
      },
    },
  });
  t.teardown(() => lab.stop());
  const job = await runLabJob(lab, lab.runner(), {
    payload: {
      id: 3303,
      contract: {
        kind: 'tracing',
        endpoints: [
          { url: `grpc://127.0.0.1:${port}` },
          {
            url: 'grpcs://otel.example.com:443',
            auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: 'https://iam.googleapis.com' } },
          },
        ],
      },
    },
  });
  t.equal(job.result.finalStatus, 200);
  await collector.waitFor((s) => s.some((x) => x.name === 'job_execution'), 10_000);
  t.ok(
    collector.spans.some((s) => s.name === 'job_execution'),
    'the named loopback collector got the job span',
  );
  const metrics = await lab.proxy.registry.metrics();
  t.equal(metricValue(metrics, 'gitlab_otel_egress_refused_total', { reason: 'audience_not_allowed', stage: 'payload' }), 1);
  const endpoints = (job.received.payload as any).features?.tracing?.otel_endpoints as { url: string }[];
  t.same(
    endpoints.map((e) => e.url),
    ['grpcs://otel.example.com:443'],
    'only the refused one stays with the runner',
  );
});

/** Stand-in DNS: a public-looking name that resolves to loopback (never the system resolver). */
const rebinding =
  (ip: string): Resolve =>
  async () => [{ address: ip, family: 4 }];

t.test('connect time, gRPC: a name resolving to loopback is refused by the resolver; explicitly allowed, it connects', async (t) => {
  const recorder = await connectionRecorder();
  t.teardown(() => recorder.close());
  const call = (target: { target: string; options: Record<string, string> }) =>
    new Promise<grpc.ServiceError | null>((resolve) => {
      const client = new grpc.Client(target.target, grpc.credentials.createInsecure(), target.options);
      client.makeUnaryRequest(
        '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        new grpc.Metadata(),
        { deadline: Date.now() + 1500 },
        (err) => {
          client.close();
          resolve(err);
        },
      );
    });
  const refused = await call(
    guardedChannel('collector.public.example', recorder.port, { allowed: true, explicit: false }, rebinding('127.0.0.1')),
  );
  t.match(refused, { code: grpc.status.UNAVAILABLE, details: /refused by the payload endpoint policy \(loopback\)/ });
  t.equal(recorder.connections(), 0, 'nothing dialled');
  await call(guardedChannel('node-collector', recorder.port, { allowed: true, explicit: true }, rebinding('127.0.0.1')));
  t.ok(recorder.connections() > 0, 'an explicitly allowed host is dialled at the address it resolves to');
});

t.test('connect time, OTLP/HTTP: the agent lookup refuses a name resolving to loopback', async (t) => {
  const recorder = await connectionRecorder();
  t.teardown(() => recorder.close());
  const agent = new http.Agent({ lookup: egressLookup({ allowed: true, explicit: false }, rebinding('127.0.0.1')) });
  t.teardown(() => agent.destroy());
  const err = await new Promise<Error>((resolve) => {
    const req = http.request({ host: 'collector.public.example', port: recorder.port, path: '/v1/traces', method: 'POST', agent }, () =>
      resolve(new Error('answered')),
    );
    req.on('error', resolve);
    req.end();
  });
  t.match(err, { code: 'EGRESS_REFUSED', reason: 'loopback' });
  t.equal(recorder.connections(), 0, 'nothing dialled');
});
