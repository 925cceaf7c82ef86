// End to end: spans go out through the real OTLP/gRPC exporter, arrive at
// the inspector's receiver, and come out as the waterfall, JSON and HTML.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials } from '@grpc/grpc-js';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { toReadableSpan, type SpanRecord } from '../../src/telemetry/spans.js';
import { parseListen, startInspector, InspectError } from '../../src/inspect/command.js';
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

/** Exports like the proxy does: stage spans as they end, the job span last. */
async function exportSpans(url: string, batches: readonly (readonly SpanRecord[])[]): Promise<void> {
  const exporter = new OTLPTraceExporter({ url, credentials: credentials.createInsecure() });
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

t.test('the CLI: bound address on stderr, waterfall on stdout, clean exit on SIGINT', async (t) => {
  const proc = cli(['inspect', '--listen', '127.0.0.1:0', '--quiet-ms', '200', '--width', '100']);
  t.teardown(() => proc.kill('SIGKILL'));
  await waitUntil(() => /receiving OTLP\/gRPC on 127\.0\.0\.1:\d+/.test(proc.stderr()), 30_000, 'the bound address');
  const port = /on 127\.0\.0\.1:(\d+)/.exec(proc.stderr())![1]!;
  await exportSpans(`http://127.0.0.1:${port}`, [stageSpans, [jobSpan]]);
  await waitUntil(() => proc.stdout().includes('cleanup_file_variables'), 10_000, 'the waterfall');
  proc.kill('SIGINT');
  t.equal(await withTimeout(proc.exit, 10_000, 'exit after SIGINT'), 0);
  t.equal(proc.stdout(), `${expected}\n`, 'no colour when stdout is not a terminal');
  t.match(proc.stderr(), /SIGINT, printing traces still waiting and stopping[\s\S]*stopped after 12 span\(s\)/);
});

t.test('the CLI: usage errors exit 2 naming the problem; --help exits 0', async (t) => {
  const bad = cli(['inspect', '--listen', 'localhost']);
  t.equal(await withTimeout(bad.exit, 30_000, 'exit'), 2);
  t.match(bad.stderr(), "--listen must be HOST:PORT (e.g. 127.0.0.1:4317), got 'localhost'");
  const unknown = cli(['inspect', '--colour']);
  t.equal(await withTimeout(unknown.exit, 30_000, 'exit'), 2);
  t.match(unknown.stderr(), '--colour');
  const help = cli(['inspect', '--help']);
  t.equal(await withTimeout(help.exit, 30_000, 'exit'), 0);
  t.match(help.stdout(), 'Usage: gitlab-otel inspect');
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
