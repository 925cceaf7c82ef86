// GitLab's payload endpoints with `http_bearer_gcp_oidc` auth, end to end
// through the real proxy: a job payload names a grpcs:// collector and an
// audience; with `use_payload_endpoints` the proxy gets an ID token for that
// audience from the GCP metadata server (`telemetry.gcp_metadata_url` points
// it at a loopback simulator) and sends it with every export, over TLS, to a
// collector that verifies it on every call.
import '../support/grpc-test-roots.js'; // first: grpc-js reads its default roots when it loads
import t, { type Test } from 'tap';
import { status, type Metadata } from '@grpc/grpc-js';
import { envDefaults } from '../../src/runner-proxy/config/load.js';
import { validateConfig } from '../../src/runner-proxy/config/schema.js';
import { memoryLogger } from '../support/memory-logger.js';
import { runLabJob, startLab } from '../../src/lab/lab.js';
import { OtlpReceiver, type ExportAnswer } from '../../src/telemetry/receiver.js';
import { GCP_METADATA_IDENTITY_URL } from '../../src/telemetry/export/settings.js';
import { eventually, metric } from '../support/export.js';
import { startMetadataServer, type TestMetadataServer } from '../support/gcp-metadata.js';
import { loopbackCertificate } from '../support/tls.js';

const TRACE = '5bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '10f067aa0ba902b7';
const AUDIENCE = 'a';

const stringify = (v: unknown): string => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));

function bearer(md: Metadata): string | undefined {
  const v = md.get('authorization')[0];
  return typeof v === 'string' && v.startsWith('Bearer ') ? v.slice(7) : undefined;
}

/** A TLS collector that verifies the Google ID token (signature, issuer, audience) on every export. */
async function collector(t: Test, metadata: TestMetadataServer) {
  const refusals: string[] = [];
  const cert = loopbackCertificate();
  const receiver = await new OtlpReceiver({
    tls: { key: cert.key, cert: cert.cert },
    verify: async (md): Promise<ExportAnswer | undefined> => {
      const token = bearer(md);
      if (!token) {
        refusals.push('no token');
        return { kind: 'error', code: status.UNAUTHENTICATED, details: 'no token' };
      }
      try {
        await metadata.verify(token, AUDIENCE);
        return undefined;
      } catch (err) {
        refusals.push((err as Error).message);
        return { kind: 'error', code: status.UNAUTHENTICATED, details: 'invalid token' };
      }
    },
  }).start();
  t.teardown(() => receiver.stop());
  return { receiver, refusals };
}

const tracing = (port: number) => ({
  kind: 'tracing' as const,
  traceId: TRACE,
  spanParentId: PARENT,
  endpoints: [{ url: `grpcs://127.0.0.1:${port}`, auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: AUDIENCE } } }],
});

/** The loopback collector is let in the way an operator lets in a node-local one (docs/security.md#payload-endpoints). */
const nodeLocal = (port: number) => ({ allowed_hosts: [`127.0.0.1:${port}`] });

t.test('a job whose payload names a GCP-authenticated grpcs:// collector: every export carries a verified ID token', async (t) => {
  const metadata = await startMetadataServer();
  t.teardown(() => metadata.close());
  const { receiver, refusals } = await collector(t, metadata);
  const log = memoryLogger();
  const lab = await startLab({
    receiver: false,
    log,
    proxyConfig: {
      log_level: 'debug',
      telemetry: { use_payload_endpoints: true, gcp_metadata_url: metadata.identityUrl, payload_endpoints: nodeLocal(receiver.port) },
    },
  });
  t.teardown(() => lab.stop());
  t.same(lab.proxy.pipeline.health(), [], 'no configured endpoint: only the payload can name one');

  const job = await runLabJob(lab, lab.runner(), { payload: { id: 4101, contract: tracing(receiver.port) }, patchSizes: [700, 700, 700] });
  t.equal(job.result.finalStatus, 200, 'the job ran to completion');
  t.notOk(
    (job.received.payload as { features?: { tracing?: unknown } }).features?.tracing,
    'the runner gets no features.tracing (native_runner_span: replace)',
  );

  await receiver.waitFor((s) => s.some((x) => x.name === 'job_execution'), 15_000);
  await lab.proxy.pipeline.flush(5000);
  const spans = receiver.spans;
  const jobSpan = spans.find((s) => s.name === 'job_execution')!;
  t.equal(jobSpan.traceId, TRACE);
  t.equal(jobSpan.parentSpanId, PARENT, 'under GitLab’s span');
  t.ok(
    spans.some((s) => s.name === 'step_script' && s.parentSpanId === jobSpan.spanId),
    'stage spans under the job span',
  );
  t.ok(spans.every((s) => s.traceId === TRACE));

  // A second job to the same collector shares the endpoint, and its token.
  const second = await runLabJob(lab, lab.runner(), { payload: { id: 4103, contract: tracing(receiver.port) } });
  t.equal(second.result.finalStatus, 200);
  const before = spans.length;
  await receiver.waitFor((s) => s.filter((x) => x.name === 'job_execution').length === 2, 15_000);
  await lab.proxy.pipeline.flush(5000);
  t.ok(receiver.spans.length > before);

  t.same(refusals, [], 'the collector refused nothing');
  t.ok(receiver.calls.length >= 2, 'one export per job at least');
  for (const call of receiver.calls)
    t.ok(metadata.issued.includes(bearer(call.metadata) ?? ''), 'each export carried an ID token the metadata server issued');
  t.same(
    metadata.requests,
    [{ audience: AUDIENCE, format: 'full', flavor: 'Google' }],
    'one token fetch, for the payload’s audience, cached across exports',
  );

  const name = `payload:127.0.0.1:${receiver.port}`;
  t.match(lab.proxy.pipeline.health(), [{ name, url: `https://127.0.0.1:${receiver.port}`, state: 'up', queueSpans: 0 }]);
  t.equal(await metric(lab.proxy.registry, 'gitlab_otel_spans_exported_total', { endpoint: name }), receiver.spans.length);
  t.equal(await metric(lab.proxy.registry, 'gitlab_otel_auth_token_refreshes_total', { endpoint: name }), 1);

  const token = metadata.issued[0]!;
  t.notOk(stringify(log.lines).includes(token), 'the ID token is not in the log');
  t.notOk((await lab.proxy.registry.metrics()).includes(token), 'nor in the metrics');
  t.notOk(stringify(receiver.spans).includes(token), 'nor in a span');
});

t.test('the metadata server is unreachable: the job is untouched, nothing reaches the collector, the failure is counted', async (t) => {
  const metadata = await startMetadataServer();
  const deadUrl = metadata.identityUrl;
  await metadata.close(); // its port now refuses connections
  const { receiver } = await collector(t, metadata);
  const log = memoryLogger();
  const lab = await startLab({
    receiver: false,
    log,
    proxyConfig: { telemetry: { use_payload_endpoints: true, gcp_metadata_url: deadUrl, payload_endpoints: nodeLocal(receiver.port) } },
  });
  t.teardown(() => lab.stop());

  const job = await runLabJob(lab, lab.runner(), { payload: { id: 4102, contract: tracing(receiver.port) } });
  t.equal(job.result.finalStatus, 200, 'the job ran to completion');
  const name = `payload:127.0.0.1:${receiver.port}`;
  await eventually(
    async () => (await metric(lab.proxy.registry, 'gitlab_otel_auth_token_failures_total', { endpoint: name })) >= 1,
    15_000,
    'token failure counted',
  );
  await eventually(() => lab.proxy.pipeline.health()[0]?.state === 'failing', 5000, 'endpoint failing');
  t.equal(receiver.calls.length, 0, 'no export without a token');
  t.equal(await metric(lab.proxy.registry, 'gitlab_otel_spans_exported_total'), 0);
  t.ok(
    log.lines.some((l) => l.fields?.endpoint === name && l.fields?.to === 'failing'),
    'the state change is logged',
  );
});

t.test('telemetry.gcp_metadata_url: defaults to the GCE metadata server, must be an http(s) URL', async (t) => {
  const env = envDefaults({}).defaults;
  t.equal(validateConfig({ upstream: { url: 'https://gitlab.example.com' } }, env).telemetry.gcpMetadataUrl, GCP_METADATA_IDENTITY_URL);
  t.equal(
    validateConfig(
      {
        upstream: { url: 'https://gitlab.example.com' },
        telemetry: { gcp_metadata_url: 'http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/identity' },
      },
      env,
    ).telemetry.gcpMetadataUrl,
    'http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/identity',
  );
  for (const bad of ['metadata.google.internal', 'ftp://metadata/identity', 42]) {
    t.throws(
      () =>
        validateConfig({ upstream: { url: 'https://gitlab.example.com' }, telemetry: { gcp_metadata_url: bad } }, env, 'gitlab-otel.yml'),
      { name: 'ConfigError', code: 'CONFIG_INVALID', message: /^gitlab-otel\.yml: telemetry\.gcp_metadata_url: / },
      `refused: ${String(bad)}`,
    );
  }
});
