// End to end: spans go out through the real OTLP exporters (gRPC, and the
// stock OTLP/HTTP protobuf exporter), arrive at the inspector's receivers, and
// come out as the waterfall, JSON and HTML.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials } from '@grpc/grpc-js';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as OTLPHttpTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { Registry } from 'prom-client';
import { toReadableSpan, type SpanRecord } from '../../src/telemetry/spans.js';
import { ExportPipeline } from '../../src/telemetry/export/pipeline.js';
import { createExportMetrics } from '../../src/telemetry/export/export-metrics.js';
import { endpointFromPayload } from '../../src/telemetry/export/settings.js';
import {
  parseListen,
  parseHttpListen,
  isLoopbackHost,
  nonLoopbackNotice,
  startInspector,
  InspectError,
} from '../../src/inspect/command.js';
import type { TraceJson } from '../../src/inspect/trace-json.js';
import { FIXTURE_SPANS, RESOURCE_ATTRIBUTES, TRACE_ID } from '../support/inspect-trace.js';
import { CHILD_NODE_ARGS, CLI_ENTRY } from '../support/child-node.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const expected = readFileSync(new URL('../support/inspect-waterfall.txt', import.meta.url), 'utf8');
const jobSpan = FIXTURE_SPANS.find((s) => s.name === 'job_execution')!;
const stageSpans = FIXTURE_SPANS.filter((s) => s !== jobSpan);

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Exports like the proxy does: stage spans as they end, the job span last.
 * An `http(s)://…/v1/traces` URL goes over OTLP/HTTP (binary protobuf), any other over gRPC.
 */
async function exportSpans(url: string, batches: readonly (readonly SpanRecord[])[]): Promise<void> {
  const exporter = url.endsWith('/v1/traces')
    ? new OTLPHttpTraceExporter({ url })
    : new OTLPTraceExporter({ url, credentials: credentials.createInsecure() });
  const resource = resourceFromAttributes(RESOURCE_ATTRIBUTES);
  try {
    for (const batch of batches) {
      const result = await withTimeout(
        new Promise<{ code: number; error?: Error }>((resolve) =>
          exporter.export(
            batch.map((s) => toReadableSpan(s, resource)),
            resolve,
          ),
        ),
        10_000,
        'export',
      );
      if (result.code !== 0) throw result.error ?? new Error('export failed');
    }
  } finally {
    await exporter.shutdown();
  }
}

/** Why ::1 cannot be listened on here, or undefined when it can. */
function ipv6LoopbackProblem(): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (e) => resolve(e.message));
    server.listen(0, '::1', () => server.close(() => resolve(undefined)));
  });
}

async function waitUntil(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('--listen parsing', async (t) => {
  t.same(parseListen('127.0.0.1:4317'), { host: '127.0.0.1', port: 4317 });
  t.same(parseListen('[::1]:0'), { host: '[::1]', port: 0 });
  t.same(parseListen('collector.internal:55680'), { host: 'collector.internal', port: 55680 });
  for (const bad of ['127.0.0.1', ':4317', '127.0.0.1:99999', 'a b:1', '::1:4317', '127.0.0.1:-1']) {
    t.throws(() => parseListen(bad), { code: 'INSPECT_USAGE' }, bad);
  }
});

t.test('--http-listen parsing: default 4318 on loopback and optional, off, explicit, clashes', async (t) => {
  const grpc = parseListen('127.0.0.1:4317');
  t.same(parseHttpListen(undefined, grpc), { httpListen: { host: '127.0.0.1', port: 4318 }, httpListenOptional: true });
  t.same(parseHttpListen('off', grpc), { httpListenOptional: false });
  t.same(parseHttpListen('[::1]:0', grpc), { httpListen: { host: '[::1]', port: 0 }, httpListenOptional: false });
  t.same(parseHttpListen('127.0.0.1:0', parseListen('127.0.0.1:0')), {
    httpListen: { host: '127.0.0.1', port: 0 },
    httpListenOptional: false,
  });
  t.throws(() => parseHttpListen('4318', grpc), {
    code: 'INSPECT_USAGE',
    message: "--http-listen must be HOST:PORT (e.g. 127.0.0.1:4318), got '4318'",
  });
  t.throws(() => parseHttpListen('127.0.0.1:4317', grpc), {
    code: 'INSPECT_USAGE',
    message: /--http-listen and --listen are both 127\.0\.0\.1:4317/,
  });
});

t.test('loopback or not: what is said on stderr', async (t) => {
  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '[::1]', '::1', '[::ffff:127.0.0.1]']) {
    t.ok(isLoopbackHost(host), host);
    t.equal(nonLoopbackNotice('--listen', { host, port: 4317 }), undefined, `${host}: nothing said`);
  }
  for (const host of ['0.0.0.0', '[::]', '10.1.2.3', '[2001:db8::1]', 'collector.internal', 'localhost.example.com']) {
    t.notOk(isLoopbackHost(host), host);
  }
  t.equal(
    nonLoopbackNotice('--http-listen', { host: '0.0.0.0', port: 4318 }),
    'inspect: --http-listen 0.0.0.0:4318 is not a loopback address: anything that can reach it can send spans (plaintext, no authentication)\n',
  );
});

t.test('prints what the real exporter sent as the exact waterfall, once the trace completes', async (t) => {
  let out = '';
  let err = '';
  const printed: string[] = [];
  const inspector = await startInspector(
    { listen: { host: '127.0.0.1', port: 0 }, quietMs: 150, width: 100, color: false, onTrace: (c) => printed.push(c.trace.traceId) },
    { out: (s) => void (out += s), err: (s) => void (err += s) },
  );
  t.teardown(() => inspector.stop());
  t.not(inspector.address.port, 0, 'a real port was bound');
  t.equal(inspector.url, `http://127.0.0.1:${inspector.address.port}`);

  await exportSpans(inspector.url, [stageSpans.slice(0, 6), stageSpans.slice(6)]);
  await inspector.receiver.waitForSpans(11, 5000);
  t.equal(out, '', 'nothing printed while the job span is missing');

  await exportSpans(inspector.url, [[jobSpan]]);
  await waitUntil(() => printed.length === 1, 10_000, 'the completed trace');
  t.equal(out, `${expected}\n`, 'decoded spans render exactly like the fixed trace');
  t.equal(err, '');
  t.equal(inspector.spanCount, 12);

  // A late span reopens the trace: printed again, as an update.
  await exportSpans(inspector.url, [
    [{ ...stageSpans[0]!, spanId: '0000000000000c01', name: 'late_section', parentSpanId: '1a2b3c4d5e6f7081' }],
  ]);
  await waitUntil(() => printed.length === 2, 10_000, 'the updated trace');
  t.match(err, `trace ${TRACE_ID} received more spans; printing it again`);
  t.match(out.slice(expected.length), /13 spans/);
  t.match(out.slice(expected.length), /late_section/);
});

t.test('--json prints one object per completed trace; --html keeps the page current', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'inspect-cmd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const html = join(dir, 'traces.html');
  let out = '';
  const inspector = await startInspector(
    { listen: { host: '127.0.0.1', port: 0 }, quietMs: 100, json: true, html, retainReceived: false },
    { out: (s) => void (out += s), err: () => {} },
  );
  t.teardown(() => inspector.stop());
  t.match(readFileSync(html, 'utf8'), 'No traces received yet.', 'the page exists from the start');

  const other: SpanRecord = { ...jobSpan, traceId: 'e'.repeat(32), spanId: 'e'.repeat(16), name: 'other_job' };
  await exportSpans(inspector.url, [stageSpans, [jobSpan], [other]]);
  await waitUntil(() => out.split('\n').filter(Boolean).length === 2, 10_000, 'two JSON lines');
  t.equal(inspector.receiver.spans.length, 0, 'retainReceived: false keeps the receiver from hoarding');
  const lines = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as TraceJson & { update: boolean });
  const fixture = lines.find((l) => l.traceId === TRACE_ID)!;
  t.match(fixture, { name: 'job_execution', spanCount: 12, errorCount: 3, rootReceived: true, update: false, durationMs: 42_500 });
  t.same(
    fixture.spans[0]!.children.map((c) => c.name),
    stageSpans.filter((s) => s.parentSpanId === jobSpan.spanId).map((s) => s.name),
  );
  t.match(
    lines.find((l) => l.traceId !== TRACE_ID),
    { name: 'other_job', spanCount: 1 },
  );

  await inspector.stop();
  const page = readFileSync(html, 'utf8');
  t.equal(page.match(/<section class="trace"/g)?.length, 2, 'both traces in the page');
  t.match(page, '<span class="name">unit_tests</span>');
  t.notOk(existsSync(join(dir, `.traces.html.${process.pid}.tmp`)), 'no temporary file left behind');
});

t.test('stop prints traces still waiting, rootless ones marked', async (t) => {
  let out = '';
  let err = '';
  const inspector = await startInspector(
    { listen: { host: '127.0.0.1', port: 0 }, quietMs: 60_000, width: 100 },
    { out: (s) => void (out += s), err: (s) => void (err += s) },
  );
  await exportSpans(inspector.url, [stageSpans]);
  await inspector.receiver.waitForSpans(11, 5000);
  t.equal(out, '');
  await inspector.stop();
  t.match(out, /trace 4bf92f3577b34da6a3ce929d0e0e4736 {2}prepare_executor · 42\.3s · 11 spans · 2 failed/);
  t.match(out, /^… prepare_executor/m, 'stages without their job are marked detached');
  t.match(err, 'its root span was not received');
});

t.test('startup errors carry stable codes', async (t) => {
  const first = await startInspector({ listen: { host: '127.0.0.1', port: 0 } }, { out: () => {}, err: () => {} });
  t.teardown(() => first.stop());
  await t.rejects(startInspector({ listen: { host: '127.0.0.1', port: first.address.port } }, { out: () => {}, err: () => {} }), {
    code: 'INSPECT_LISTEN_FAILED',
  });
  const err = await startInspector(
    { listen: { host: '127.0.0.1', port: 0 }, html: join(tmpdir(), 'no-such-dir-inspect', 'x', 'y.html') },
    { out: () => {}, err: () => {} },
  ).catch((e: unknown) => e);
  t.ok(err instanceof InspectError);
  t.equal((err as InspectError).code, 'INSPECT_HTML_WRITE_FAILED');
});

t.test('OTLP/HTTP: what the stock protobuf exporter posts to /v1/traces prints as the exact waterfall', async (t) => {
  let out = '';
  let err = '';
  const printed: string[] = [];
  const inspector = await startInspector(
    {
      listen: { host: '127.0.0.1', port: 0 },
      httpListen: { host: '127.0.0.1', port: 0 },
      quietMs: 150,
      width: 100,
      onTrace: (c) => printed.push(c.trace.traceId),
    },
    { out: (s) => void (out += s), err: (s) => void (err += s) },
  );
  t.teardown(() => inspector.stop());
  t.not(inspector.httpAddress?.port, 0, 'a real port was bound');
  t.equal(inspector.httpUrl, `http://127.0.0.1:${inspector.httpAddress!.port}/v1/traces`);

  await exportSpans(inspector.httpUrl!, [stageSpans.slice(0, 6), stageSpans.slice(6), [jobSpan]]);
  await waitUntil(() => printed.length === 1, 10_000, 'the completed trace');
  t.equal(out, `${expected}\n`);
  t.equal(err, '');
  t.equal(inspector.spanCount, 12);
  t.same(inspector.httpReceiver!.refusals, [], 'every request was valid OTLP/HTTP');
  t.equal(inspector.receiver.spans.length, 0, 'nothing came over gRPC');
});

const noIpv6 = await ipv6LoopbackProblem();
t.test(
  'gRPC and OTLP/HTTP at once: spans of one trace over both land in one trace',
  { skip: noIpv6 === undefined ? false : `no IPv6 loopback on this machine (${noIpv6})` },
  async (t) => {
    let out = '';
    const inspector = await startInspector(
      { listen: { host: '127.0.0.1', port: 0 }, httpListen: { host: '[::1]', port: 0 }, quietMs: 150, json: true, retainReceived: false },
      { out: (s) => void (out += s), err: () => {} },
    );
    t.teardown(() => inspector.stop());
    t.equal(inspector.httpUrl, `http://[::1]:${inspector.httpAddress!.port}/v1/traces`, 'IPv6 in brackets in the URL');

    // The stage spans over HTTP, interleaved with the job span and a late section over gRPC.
    await Promise.all([
      exportSpans(inspector.httpUrl!, [stageSpans.slice(0, 6), stageSpans.slice(6)]),
      exportSpans(inspector.url, [[jobSpan]]),
    ]);
    await waitUntil(() => out.includes('\n'), 10_000, 'the JSON line');
    await inspector.stop();
    const lines = out.trim().split('\n');
    t.equal(lines.length, 1, 'one trace, printed once');
    const trace = JSON.parse(lines[0]!) as TraceJson & { update: boolean };
    t.match(trace, { traceId: TRACE_ID, name: 'job_execution', spanCount: 12, rootReceived: true, update: false });
    t.same(
      trace.spans[0]!.children.map((c) => c.name),
      stageSpans.filter((s) => s.parentSpanId === jobSpan.spanId).map((s) => s.name),
      'the HTTP stages under the gRPC job span',
    );
    t.equal(inspector.spanCount, 12);
    t.equal(inspector.httpReceiver!.spans.length + inspector.receiver.spans.length, 0, 'retainReceived: false, both receivers');
  },
);

t.test('a GitLab otel_endpoints entry naming the inspector: our own export pipeline (gzip) delivers the exact waterfall', async (t) => {
  let out = '';
  let err = '';
  const printed: string[] = [];
  const inspector = await startInspector(
    {
      listen: { host: '127.0.0.1', port: 0 },
      httpListen: { host: '127.0.0.1', port: 0 },
      quietMs: 150,
      width: 100,
      onTrace: (c) => printed.push(c.trace.traceId),
    },
    { out: (s) => void (out += s), err: (s) => void (err += s) },
  );
  t.teardown(() => inspector.stop());
  // As the proxy maps a payload endpoint; a node-local collector must be named to pass the egress policy.
  const made = endpointFromPayload(
    { url: inspector.httpUrl! },
    { egress: { allowedHosts: [{ host: '127.0.0.1', port: inspector.httpAddress!.port }] } },
  );
  if (!made.ok) throw made.error;
  t.match(made.endpoint, { protocol: 'http/protobuf', url: inspector.httpUrl, compression: 'gzip' });
  const pipeline = await ExportPipeline.create({ endpoints: [], metrics: createExportMetrics(new Registry()), log: () => undefined });
  t.teardown(() => pipeline.shutdown(1000));
  pipeline.submit([...stageSpans, jobSpan], resourceFromAttributes(RESOURCE_ATTRIBUTES), [made.endpoint]);
  await waitUntil(() => printed.length === 1, 10_000, 'the completed trace');
  t.equal(out, `${expected}\n`);
  t.equal(err, '');
  t.ok(inspector.httpReceiver!.calls.length > 0 && inspector.httpReceiver!.calls.every((c) => c.contentEncoding === 'gzip'), 'gzipped');
  t.same(inspector.httpReceiver!.refusals, []);
});

t.test('OTLP/HTTP startup: a taken default port is a warning, a taken chosen port an error naming --http-listen', async (t) => {
  const taken = await startInspector(
    { listen: { host: '127.0.0.1', port: 0 }, httpListen: { host: '127.0.0.1', port: 0 } },
    { out: () => {}, err: () => {} },
  );
  t.teardown(() => taken.stop());
  const busy = { host: '127.0.0.1', port: taken.httpAddress!.port };

  let err = '';
  const optional = await startInspector(
    { listen: { host: '127.0.0.1', port: 0 }, httpListen: busy, httpListenOptional: true, quietMs: 50 },
    { out: () => {}, err: (s) => void (err += s) },
  );
  t.teardown(() => optional.stop());
  t.match(err, `inspect: not receiving OTLP/HTTP: cannot listen on 127.0.0.1:${busy.port} (--http-listen): `);
  t.match(err, /EADDRINUSE/);
  t.equal(optional.httpUrl, undefined);
  t.equal(optional.httpReceiver, undefined);
  await exportSpans(optional.url, [[jobSpan]]);
  await optional.receiver.waitForSpans(1, 5000);
  t.equal(optional.spanCount, 1, 'gRPC still received');

  const failed = await startInspector({ listen: { host: '127.0.0.1', port: 0 }, httpListen: busy }, { out: () => {}, err: () => {} }).catch(
    (e: unknown) => e,
  );
  t.ok(failed instanceof InspectError);
  t.match(failed, { code: 'INSPECT_LISTEN_FAILED', message: `cannot listen on 127.0.0.1:${busy.port} (--http-listen)` });
  t.match(
    await startInspector({ listen: { host: '127.0.0.1', port: taken.address.port } }, { out: () => {}, err: () => {} }).catch(
      (e: unknown) => e,
    ),
    { code: 'INSPECT_LISTEN_FAILED', message: /\(--listen\)/ },
  );
});

t.test('OTLP/HTTP: a refused request is said on stderr, once per status, without the query string', async (t) => {
  let err = '';
  const inspector = await startInspector(
    { listen: { host: '127.0.0.1', port: 0 }, httpListen: { host: '127.0.0.1', port: 0 } },
    { out: () => {}, err: (s) => void (err += s) },
  );
  t.teardown(() => inspector.stop());
  const base = inspector.httpUrl!.replace('/v1/traces', '');
  const post = (path: string, type = 'application/x-protobuf'): Promise<number> =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': type },
      body: new Uint8Array(0),
      signal: AbortSignal.timeout(10_000),
    }).then(async (r) => {
      await r.arrayBuffer();
      return r.status;
    });
  t.equal(await post('/?token=secret-in-query'), 404);
  t.equal(await post('/other'), 404);
  t.equal(await post('/v1/traces', 'application/json'), 415);
  t.equal(
    err,
    'inspect: refused an OTLP/HTTP request (404): path / is not /v1/traces; further 404s are not reported\n' +
      'inspect: refused an OTLP/HTTP request (415): Content-Type application/json is not application/x-protobuf; further 415s are not reported\n',
  );
  t.notMatch(err, 'secret-in-query');
});

interface Cli {
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
  kill: (signal: NodeJS.Signals) => void;
}

function cli(args: string[]): Cli {
  const child = spawn(process.execPath, [...CHILD_NODE_ARGS, CLI_ENTRY, ...args], {
    cwd: root,
    env: { ...process.env, NO_COLOR: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { stdout: () => stdout, stderr: () => stderr, exit, kill: (s) => void child.kill(s) };
}

t.test('the CLI: bound addresses on stderr, waterfall on stdout from both transports, clean exit on SIGINT', async (t) => {
  const proc = cli(['inspect', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--quiet-ms', '200', '--width', '100']);
  t.teardown(() => proc.kill('SIGKILL'));
  await waitUntil(
    () => /receiving OTLP\/HTTP on http:\/\/127\.0\.0\.1:\d+\/v1\/traces\n/.test(proc.stderr()),
    30_000,
    'the bound addresses',
  );
  const port = /receiving OTLP\/gRPC on 127\.0\.0\.1:(\d+)\n/.exec(proc.stderr())![1]!;
  const httpUrl = /receiving OTLP\/HTTP on (\S+)\n/.exec(proc.stderr())![1]!;
  t.notMatch(proc.stderr(), 'not a loopback address', 'loopback: nothing said');
  await exportSpans(httpUrl, [stageSpans]);
  await exportSpans(`http://127.0.0.1:${port}`, [[jobSpan]]);
  await waitUntil(() => proc.stdout().includes('cleanup_file_variables'), 10_000, 'the waterfall');
  proc.kill('SIGINT');
  t.equal(await withTimeout(proc.exit, 10_000, 'exit after SIGINT'), 0);
  t.equal(proc.stdout(), `${expected}\n`, 'no colour when stdout is not a terminal');
  t.match(proc.stderr(), /SIGINT, printing traces still waiting and stopping[\s\S]*stopped after 12 span\(s\)/);
});

t.test('the CLI: usage errors exit 2 naming the problem; --help exits 0', async (t) => {
  // Started together: each child spends most of its time loading TypeScript.
  const bad = cli(['inspect', '--listen', 'localhost']);
  const badHttp = cli(['inspect', '--http-listen', '127.0.0.1:4318/v1/traces']);
  const unknown = cli(['inspect', '--colour']);
  const help = cli(['inspect', '--help']);
  t.equal(await withTimeout(bad.exit, 30_000, 'exit'), 2);
  t.match(bad.stderr(), "--listen must be HOST:PORT (e.g. 127.0.0.1:4317), got 'localhost'");
  t.equal(await withTimeout(badHttp.exit, 30_000, 'exit'), 2);
  t.match(badHttp.stderr(), "--http-listen must be HOST:PORT (e.g. 127.0.0.1:4318), got '127.0.0.1:4318/v1/traces'");
  t.equal(await withTimeout(unknown.exit, 30_000, 'exit'), 2);
  t.match(unknown.stderr(), '--colour');
  t.equal(await withTimeout(help.exit, 30_000, 'exit'), 0);
  t.match(help.stdout(), 'Usage: gitlab-otel inspect');
  t.match(help.stdout(), '--http-listen HOST:PORT|off');
});

t.test('an HTML write failure or a throwing onTrace is reported, and receiving goes on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'inspect-fail-'));
  const html = join(dir, 'traces.html');
  let out = '';
  let err = '';
  let calls = 0;
  const inspector = await startInspector(
    {
      listen: { host: '127.0.0.1', port: 0 },
      quietMs: 50,
      html,
      onTrace: () => {
        calls += 1;
        throw new Error('callback broke');
      },
    },
    { out: (s) => void (out += s), err: (s) => void (err += s) },
  );
  t.teardown(() => inspector.stop());
  rmSync(dir, { recursive: true, force: true });

  await exportSpans(inspector.url, [[jobSpan]]);
  await waitUntil(() => err.includes('INSPECT_HTML_WRITE_FAILED'), 10_000, 'the write failure report');
  t.match(err, `could not print trace ${TRACE_ID}: callback broke`);
  const other: SpanRecord = { ...jobSpan, traceId: 'd'.repeat(32) };
  await exportSpans(inspector.url, [[other]]);
  await waitUntil(() => calls === 2, 10_000, 'the second trace');
  t.equal(err.match(/INSPECT_HTML_WRITE_FAILED/g)?.length, 1, 'reported once per failure streak');
  t.equal(out.match(/^trace /gm)?.length, 2, 'both traces printed');
});
