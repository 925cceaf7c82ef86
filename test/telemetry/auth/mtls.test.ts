// mTLS to a collector that requires client certificates: the endpoint's
// `tls.certFile`/`keyFile` are presented in the handshake, a client without
// one (or with one from another CA) never reaches the collector, and its
// spans are counted, not lost silently.
import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { OtlpReceiver } from '../../../src/telemetry/receiver.js';
import { ExportPipeline } from '../../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../../src/telemetry/export/export-metrics.js';
import { recordEvents, type LogEvent } from '../../support/memory-logger.js';
import type { EndpointSettings, TlsSettings } from '../../../src/telemetry/export/settings.js';
import { endpointSettings, eventually, makeSpans, metric, resource } from '../../support/export.js';
import { caSignedCertificate, testCa } from '../../support/tls.js';

const ca = testCa('collector');
const otherCa = testCa('stranger');
const serverCert = caSignedCertificate(ca, '127.0.0.1', 'server');
const clientCert = caSignedCertificate(ca, 'gitlab-otel-proxy', 'client');
const strangerCert = caSignedCertificate(otherCa, 'gitlab-otel-proxy', 'client');

async function mtlsCollector(t: Test): Promise<OtlpReceiver> {
  const receiver = await new OtlpReceiver({
    tls: { key: serverCert.key, cert: serverCert.cert, clientCa: ca.cert, requireClientCertificate: true },
  }).start();
  t.teardown(() => receiver.stop());
  return receiver;
}

async function pipelineFor(t: Test, ep: EndpointSettings) {
  const registry = new Registry();
  const logs: LogEvent[] = [];
  const pipeline = await ExportPipeline.create({ endpoints: [ep], metrics: createExportMetrics(registry), log: recordEvents(logs) });
  t.teardown(() => pipeline.shutdown(500));
  return { pipeline, registry, logs };
}

const withTls = (url: string, tls: TlsSettings): EndpointSettings => endpointSettings('mtls', url, { tls, timeoutMs: 1000 });

t.test('the client certificate is presented and accepted; the collector sees who it is', async (t) => {
  const receiver = await mtlsCollector(t);
  const ep = withTls(receiver.url, {
    caFile: ca.certFile,
    certFile: clientCert.certFile,
    keyFile: clientCert.keyFile,
    insecureSkipVerify: false,
  });
  const { pipeline, registry } = await pipelineFor(t, ep);

  pipeline.submit(makeSpans(4), resource, [ep]);
  await receiver.waitForSpans(4, 15_000);
  t.equal(receiver.spans.length, 4);
  t.ok(receiver.calls.length >= 1);
  for (const call of receiver.calls) {
    t.match(call.clientCertificate, { subjectCN: 'gitlab-otel-proxy', issuerCN: 'gitlab-otel test CA collector' });
  }
  await eventually(() => pipeline.health()[0]?.state === 'up', 5000, 'endpoint up');
  t.equal(await metric(registry, 'gitlab_otel_spans_exported_total', { endpoint: 'mtls' }), 4);
});

// The three ways an mTLS handshake must fail. None of them may reach the
// collector's service, and every span is accounted for once the endpoint stops.
const refused: [string, (url: string) => EndpointSettings][] = [
  ['a client without a certificate', (url) => withTls(url, { caFile: ca.certFile, insecureSkipVerify: false })],
  [
    'a client whose certificate another CA signed',
    (url) =>
      withTls(url, { caFile: ca.certFile, certFile: strangerCert.certFile, keyFile: strangerCert.keyFile, insecureSkipVerify: false }),
  ],
  [
    'a client that does not trust the collector (its CA file names another CA)',
    (url) =>
      withTls(url, { caFile: otherCa.certFile, certFile: clientCert.certFile, keyFile: clientCert.keyFile, insecureSkipVerify: false }),
  ],
];

for (const [what, endpoint] of refused) {
  t.test(`refused: ${what}`, async (t) => {
    const receiver = await mtlsCollector(t);
    const ep = endpoint(receiver.url);
    const { pipeline, registry, logs } = await pipelineFor(t, ep);

    pipeline.submit(makeSpans(3), resource, [ep]);
    await eventually(() => pipeline.health()[0]?.state === 'failing', 10_000, 'endpoint failing');
    t.equal(pipeline.health()[0]?.lastError, 'UNAVAILABLE', 'a failed handshake is a transport failure');
    t.equal(receiver.calls.length, 0, 'no call reached the collector');
    t.match(logs, [{ event: 'endpoint_state', endpoint: 'mtls', to: 'failing' }]);

    await pipeline.shutdown(500);
    t.equal(receiver.spans.length, 0);
    t.equal(await metric(registry, 'gitlab_otel_spans_exported_total'), 0);
    t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { endpoint: 'mtls' }), 3, 'every span counted as dropped');
  });
}

t.test('an unreadable client key makes the endpoint invalid: counted, named in the log, no crash', async (t) => {
  const receiver = await mtlsCollector(t);
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-mtls-'));
  const missing = join(dir, 'no-such-key.pem');
  const ep = withTls(receiver.url, { caFile: ca.certFile, certFile: clientCert.certFile, keyFile: missing, insecureSkipVerify: false });
  const { pipeline, registry, logs } = await pipelineFor(t, ep);
  pipeline.submit(makeSpans(2), resource, [ep]);
  t.equal(pipeline.health()[0]?.state, 'invalid');
  t.equal(await metric(registry, 'gitlab_otel_spans_dropped_total', { reason: 'endpoint_invalid' }), 2);
  t.match(logs, [
    { event: 'endpoint_invalid', code: 'TLS_FILE_UNREADABLE', message: /client key file .*no-such-key\.pem cannot be read \(ENOENT\)/ },
  ]);

  // A key file that exists but is not a key: grpc-js refuses it when the channel is built.
  const garbage = join(dir, 'garbage.pem');
  writeFileSync(garbage, 'not a key');
  const bad = {
    ...withTls(receiver.url, { caFile: ca.certFile, certFile: clientCert.certFile, keyFile: garbage, insecureSkipVerify: false }),
    name: 'garbage',
  };
  const second = await pipelineFor(t, bad);
  second.pipeline.submit(makeSpans(1), resource, [bad]);
  await second.pipeline.shutdown(500);
  t.equal(receiver.calls.length, 0);
  t.equal(
    await metric(second.registry, 'gitlab_otel_spans_dropped_total', { endpoint: 'garbage' }),
    1,
    'counted, whatever the stage that refused it',
  );
  t.notOk(JSON.stringify(second.logs).includes('not a key'), 'file contents never reach the log');
});
