import t from 'tap';
import { createServer } from 'node:net';
import { OtlpReceiver } from '../../src/telemetry/receiver.js';
import { parseTraceparent } from '../../src/in-job/trace-context.js';
import { gitlabTraceId, pipelineRootSpanId } from '../../src/telemetry/pipeline-ids.js';
import { jobEnv, loopbackCertificate, runCli } from '../support/in-job-harness.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';
const CI = {
  CI_JOB_ID: '4242',
  CI_JOB_NAME: 'build',
  CI_JOB_STAGE: 'test',
  CI_PIPELINE_ID: '777',
  CI_PROJECT_ID: '12',
  CI_SERVER_URL: 'https://gitlab.example.com',
  // Must never reach a span: it embeds the job token.
  CI_REPOSITORY_URL: 'https://gitlab-ci-token:glcbt-SECRET@gitlab.example.com/g/p.git',
  CI_JOB_TOKEN: 'glcbt-SECRET',
};

// Prints what the wrapped command saw, then exits with the code it was asked for.
const PROBE = `process.stdout.write(JSON.stringify({ tp: process.env.TRACEPARENT, ts: process.env.TRACESTATE }) + '\\n'); process.exit(Number(process.argv[1] ?? 0))`;

t.test('gitlab-otel span end to end against the OTLP receiver', async (t) => {
  const receiver = await new OtlpReceiver().start();
  t.teardown(() => receiver.stop());

  t.test('child of TRACEPARENT; the command sees a new TRACEPARENT; its exit code and output are kept', async (t) => {
    const run = await runCli(
      ['span', '--name', 'compile', '--attr', 'target=release', '--', process.execPath, '-e', PROBE, '3'],
      jobEnv({
        ...CI,
        TRACEPARENT: `00-${TRACE}-${PARENT}-01`,
        TRACESTATE: 'vendor=x',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=ci',
      }),
    );
    t.equal(run.code, 3, 'exit code preserved');
    t.equal(run.stderr, '', 'nothing added to stderr on success');
    const seen = JSON.parse(run.stdout) as { tp: string; ts?: string };
    const childTp = parseTraceparent(seen.tp);
    t.ok(childTp, 'the command got a valid TRACEPARENT');
    t.equal(childTp!.traceId, TRACE, 'same trace');
    t.not(childTp!.spanId, PARENT, 'a new span id, not the parent');
    t.equal(seen.ts, 'vendor=x', 'TRACESTATE passed on');
    await receiver.waitFor((spans) => spans.some((s) => s.name === 'compile'), 10_000);
    const span = receiver.spans.find((s) => s.name === 'compile')!;
    t.equal(span.traceId, TRACE);
    t.equal(span.parentSpanId, PARENT);
    t.equal(span.spanId, childTp!.spanId, 'the exported span is the one handed to the command');
    t.equal(span.traceState, 'vendor=x');
    t.equal(span.status.code, 2, 'ERROR on a non-zero exit');
    t.match(span.attributes, {
      target: 'release',
      'process.exit.code': 3,
      'process.executable.name': 'node',
      'error.type': '3',
      'ci.job.id': 4242,
      'ci.pipeline.id': 777,
      'ci.project.id': 12,
      'ci.job.name': 'build',
    });
    t.equal(span.resource['service.name'], 'gitlab-ci');
    const serialized = JSON.stringify(span, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    t.notOk(serialized.includes('SECRET'), 'no token or repository URL in the span');
    t.notOk(serialized.includes(PROBE.slice(0, 20)), 'command arguments are not recorded');
    t.equal(receiver.calls.at(-1)!.metadata.get('x-tenant')[0], 'ci', 'OTEL_EXPORTER_OTLP_HEADERS sent');
    t.ok(span.endTimeUnixNano >= span.startTimeUnixNano);
  });

  t.test('success: status unset, exit 0', async (t) => {
    const run = await runCli(
      ['span', '--name', 'ok-step', '--', 'true'],
      jobEnv({ TRACEPARENT: `00-${TRACE}-${PARENT}-01`, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }),
    );
    t.equal(run.code, 0);
    await receiver.waitFor((spans) => spans.some((s) => s.name === 'ok-step'));
    const span = receiver.spans.find((s) => s.name === 'ok-step')!;
    t.equal(span.status.code, 0);
    t.equal(span.attributes['process.exit.code'], 0);
    t.notOk('error.type' in span.attributes);
  });

  t.test('a command killed by a signal exits 128+n and is recorded as such', async (t) => {
    const run = await runCli(
      ['span', '--name', 'killed', '--', 'sh', '-c', 'kill -TERM $$'],
      jobEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }),
    );
    t.equal(run.code, 143);
    await receiver.waitFor((spans) => spans.some((s) => s.name === 'killed'));
    const span = receiver.spans.find((s) => s.name === 'killed')!;
    t.match(span.attributes, { 'error.type': 'SIGTERM' });
    t.equal(span.parentSpanId, '', 'no TRACEPARENT: a root span');
  });

  t.test('a missing command exits 127 and still leaves a span', async (t) => {
    const run = await runCli(
      ['span', '--name', 'missing', '--', 'gitlab-otel-no-such-command'],
      jobEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }),
    );
    t.equal(run.code, 127);
    t.match(run.stderr, /cannot run gitlab-otel-no-such-command \(ENOENT\)/);
    await receiver.waitFor((spans) => spans.some((s) => s.name === 'missing'));
  });

  t.test('unsampled parent: the command runs, nothing is exported, the flag is propagated', async (t) => {
    const before = receiver.calls.length;
    const run = await runCli(
      ['span', '--name', 'unsampled', '--', process.execPath, '-e', PROBE, '0'],
      jobEnv({ TRACEPARENT: `00-${TRACE}-${PARENT}-00`, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }),
    );
    t.equal(run.code, 0);
    t.match(JSON.parse(run.stdout).tp, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-00$`));
    t.equal(receiver.calls.length, before);
  });

  t.test('fallback mode: no TRACEPARENT, parent is the derived pipeline root', async (t) => {
    await runCli(
      ['span', '--name', 'fallback-step', '--', 'true'],
      jobEnv({ ...CI, GITLAB_OTEL_TELEMETRY: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }),
    );
    await receiver.waitFor((spans) => spans.some((s) => s.name === 'fallback-step'));
    const span = receiver.spans.find((s) => s.name === 'fallback-step')!;
    t.equal(span.traceId, gitlabTraceId(CI.CI_PIPELINE_ID), "GitLab's trace id for the pipeline");
    t.equal(span.parentSpanId, pipelineRootSpanId(CI.CI_SERVER_URL, CI.CI_PIPELINE_ID));
  });
});

t.test('collector down or silent costs nothing: same exit code, same output', async (t) => {
  // A port nobody listens on: connection refused.
  const closed = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
  const down = await runCli(
    ['span', '--name', 'x', '--', process.execPath, '-e', PROBE, '5'],
    jobEnv({ TRACEPARENT: `00-${TRACE}-${PARENT}-01`, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}` }),
  );
  t.equal(down.code, 5);
  t.match(JSON.parse(down.stdout).tp, new RegExp(`^00-${TRACE}-`), 'stdout is only the command output');
  t.match(down.stderr, /not exported to 127\.0\.0\.1:\d+/, 'one line says why');

  // A collector that accepts connections and never answers: bounded by --timeout-ms.
  const sockets: import('node:net').Socket[] = [];
  const silent = createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const port = (silent.address() as { port: number }).port;
  const hung = await runCli(
    ['span', '--timeout-ms', '500', '--', 'sh', '-c', 'echo out; exit 4'],
    jobEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` }),
    30_000,
  );
  t.equal(hung.code, 4);
  t.equal(hung.stdout, 'out\n');

  const none = await runCli(['span', '--', 'sh', '-c', 'echo quiet; exit 0'], jobEnv());
  t.same(
    { code: none.code, stdout: none.stdout, stderr: none.stderr },
    { code: 0, stdout: 'quiet\n', stderr: '' },
    'no endpoint: no export, no noise',
  );
});

t.test('bearer token from the id_tokens variable, over TLS only', async (t) => {
  const cert = loopbackCertificate();
  const receiver = await new OtlpReceiver({ tls: { key: cert.key, cert: cert.cert } }).start();
  t.teardown(() => receiver.stop());
  const token = 'eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJnaXRsYWItb3RlbCJ9.sig';
  const run = await runCli(
    ['span', '--name', 'tls-step', '--id-token-variable', 'MY_ID_TOKEN', '--', 'true'],
    jobEnv({ MY_ID_TOKEN: token, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_CERTIFICATE: cert.certFile }),
  );
  t.equal(run.code, 0);
  // (Node itself may warn that TLS SNI ignores IP addresses; we only care that we reported no failure.)
  t.notMatch(run.stderr, /gitlab-otel span:/);
  await receiver.waitFor((spans) => spans.some((s) => s.name === 'tls-step'));
  t.equal(receiver.calls.at(-1)!.metadata.get('authorization')[0], `Bearer ${token}`);

  // A token is never sent in clear to a non-loopback host; the command is unaffected.
  const refused = await runCli(
    ['span', '--timeout-ms', '500', '--', 'sh', '-c', 'exit 0'],
    jobEnv({ GITLAB_OTEL_ID_TOKEN: token, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://192.0.2.1:4317' }),
  );
  t.equal(refused.code, 0);
  t.match(refused.stderr, /plaintext/);
  t.notOk(refused.stderr.includes(token), 'the token is never printed');
});

t.test('usage errors exit 2 before running anything', async (t) => {
  const noSep = await runCli(['span', '--name', 'x', 'true'], jobEnv());
  t.equal(noSep.code, 2);
  t.match(noSep.stderr, /missing '--'/);
  const badAttr = await runCli(['span', '--attr', 'oops', '--', 'sh', '-c', 'echo ran'], jobEnv());
  t.equal(badAttr.code, 2);
  t.equal(badAttr.stdout, '', 'the command did not run');
});
