// README claims about the forwarding path that no other test backed, each
// through the real proxy (issue #15): X-Forwarded-For appended to, hop-by-hop
// headers stripped both ways, TLS to an HTTPS upstream with a custom CA (and
// refused for an untrusted one), a trace PATCH answered 416 followed by the
// runner's re-send from Range, and the spool's byte bound on disk. The spool
// and journal file modes are proven in test/security/file-modes.test.ts.
import t from 'tap';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { memoryLogger } from '../support/memory-logger.js';
import { envDefaults } from '../../src/runner-proxy/config/load.js';
import { validateConfig } from '../../src/runner-proxy/config/schema.js';
import { startRunnerProxy, type RunningProxy } from '../../src/runner-proxy/runtime.js';
import { startLab, runLabJob } from '../../src/lab/lab.js';
import { buildJobLog } from '../../src/lab/job-log-builder.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import { loopbackCertificate } from '../support/tls.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

interface Seen {
  rawHeaders: string[];
}

/** An upstream that records each request's raw headers and answers with `respond`'s headers. */
async function rawUpstream(
  respond: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  tls?: { key: Buffer; cert: Buffer },
): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    seen.push({ rawHeaders: req.rawHeaders });
    req.resume();
    req.on('end', () => respond(req, res));
  };
  const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, handler) : http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function proxyTo(upstream: Record<string, unknown>, log = memoryLogger()): Promise<RunningProxy> {
  return startRunnerProxy(validateConfig({ listen: '127.0.0.1:0', admin: null, upstream }, envDefaults({}).defaults), { log });
}

/** One request through the proxy with raw header pairs; resolves with the status and raw response headers. */
function request(port: number, rawHeaders: [string, string][]): Promise<{ status: number; rawHeaders: string[]; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'GET', path: '/api/v4/runners/verify', setHost: true }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, body }));
    });
    for (const [k, v] of rawHeaders) req.setHeader(k, v);
    req.on('error', reject);
    req.end();
  });
}

const names = (raw: string[]): string[] => raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
const values = (raw: string[], name: string): string[] =>
  raw.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === name ? [raw[i + 1]!] : []));

t.test('an existing X-Forwarded-For is appended to, not replaced', async (t) => {
  const up = await rawUpstream((_, res) => res.end('ok'));
  const proxy = await proxyTo({ url: up.url });
  t.teardown(async () => {
    await proxy.stop();
    await up.close();
  });
  const res = await request(proxy.address.port, [['X-Forwarded-For', '203.0.113.7, 10.1.2.3']]);
  t.equal(res.status, 200);
  t.same(values(up.seen[0]!.rawHeaders, 'x-forwarded-for'), ['203.0.113.7, 10.1.2.3, 127.0.0.1'], 'one header: the chain plus the runner');
  await request(proxy.address.port, []);
  t.same(values(up.seen[1]!.rawHeaders, 'x-forwarded-for'), ['127.0.0.1'], 'without one, the runner address alone');
});

t.test('hop-by-hop headers, and those named in Connection, are stripped both ways', async (t) => {
  const up = await rawUpstream((_, res) => {
    res.setHeader('Connection', 'keep-alive, X-Upstream-Hop');
    res.setHeader('X-Upstream-Hop', 'must not reach the runner');
    res.setHeader('Keep-Alive', 'timeout=77');
    res.setHeader('Proxy-Authenticate', 'Basic realm="upstream"');
    res.setHeader('X-End-To-End', 'kept');
    res.end('ok');
  });
  const proxy = await proxyTo({ url: up.url });
  t.teardown(async () => {
    await proxy.stop();
    await up.close();
  });
  const res = await request(proxy.address.port, [
    ['Connection', 'keep-alive, X-Runner-Hop'],
    ['X-Runner-Hop', 'must not reach GitLab'],
    ['Keep-Alive', 'timeout=99'],
    ['Proxy-Authorization', 'Basic cnVubmVyOnNlY3JldA=='],
    ['TE', 'trailers'],
    ['X-End-To-End', 'kept'],
  ]);
  t.equal(res.status, 200);
  const upstreamNames = names(up.seen[0]!.rawHeaders);
  for (const hop of ['x-runner-hop', 'proxy-authorization', 'te', 'keep-alive'])
    t.notOk(upstreamNames.includes(hop), `request: ${hop} not forwarded`);
  t.notOk(
    values(up.seen[0]!.rawHeaders, 'connection').some((v) => /x-runner-hop/i.test(v)),
    "request: the runner's Connection list not forwarded",
  );
  t.same(values(up.seen[0]!.rawHeaders, 'x-end-to-end'), ['kept'], 'request: end-to-end header forwarded');
  const runnerNames = names(res.rawHeaders);
  for (const hop of ['x-upstream-hop', 'proxy-authenticate']) t.notOk(runnerNames.includes(hop), `response: ${hop} not forwarded`);
  t.notOk(values(res.rawHeaders, 'keep-alive').includes('timeout=77'), "response: GitLab's Keep-Alive not forwarded");
  t.notOk(
    values(res.rawHeaders, 'connection').some((v) => /x-upstream-hop/i.test(v)),
    "response: GitLab's Connection list not forwarded",
  );
  t.same(values(res.rawHeaders, 'x-end-to-end'), ['kept'], 'response: end-to-end header forwarded');
});

t.test('an HTTPS upstream with a custom CA works; one the CA does not vouch for is refused', async (t) => {
  const trusted = loopbackCertificate('readme-upstream');
  const other = loopbackCertificate('readme-untrusted');
  const good = await rawUpstream((_, res) => res.end('tls ok'), trusted);
  const bad = await rawUpstream((_, res) => res.end('should not be reached'), other);
  const log = memoryLogger();
  const viaGood = await proxyTo({ url: good.url, ca_file: trusted.certFile });
  const viaBad = await proxyTo({ url: bad.url, ca_file: trusted.certFile }, log);
  t.teardown(async () => {
    await viaGood.stop();
    await viaBad.stop();
    await good.close();
    await bad.close();
  });
  const ok = await request(viaGood.address.port, []);
  t.equal(ok.status, 200);
  t.equal(ok.body, 'tls ok', 'the answer came over TLS verified against the custom CA');
  const refused = await request(viaBad.address.port, []);
  t.equal(refused.status, 502, 'an upstream certificate outside the CA: the runner gets a 502');
  t.equal(bad.seen.length, 0, 'no request reached the untrusted upstream');
  t.ok(
    log.lines.some((l) => /certificate|self.signed|unable to verify/i.test(`${l.msg} ${JSON.stringify(l.fields ?? {})}`)),
    'the log says the certificate was the problem',
  );
});

t.test('a trace PATCH answered 416, then the runner re-sends from Range: correct spans, no duplicated log bytes', async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  const log = buildJobLog('user-sections', { start: new Date('2026-01-01T00:00:00Z'), timestamps: true });
  const size = 1024;
  lab.gitlab.enqueue(makeJobPayload({ id: 7101, contract: { kind: 'job_telemetry', traceId: TRACE, parentSpanId: '00f067aa0ba902b7' } }));
  const job = (await runner.requestJob())!;
  const answers: number[] = [];
  const patch = async (start: number, end: number): Promise<void> => {
    const ex = await runner.call(
      'PATCH',
      `/api/v4/jobs/${job.id}/trace`,
      { 'Content-Type': 'text/plain', 'JOB-TOKEN': job.token, 'Content-Range': `${start}-${end - 1}` },
      log.bytes.subarray(start, end),
    );
    answers.push(ex.status);
  };
  const result = await runner.runJob(job, {
    log: log.bytes,
    state: 'success',
    patchSizes: Array<number>(Math.ceil(log.bytes.length / size)).fill(size),
    // Before the fourth PATCH, two the way a runner produces them: the third chunk again
    // (a retry whose first attempt did land) and one that skips ahead (a chunk lost in
    // between). GitLab answers both 416 with Range 0-3072; the runner's next PATCH is
    // the re-send from there.
    beforePatch: async (i) => {
      if (i !== 3) return;
      await patch(2 * size, 3 * size);
      await patch(3 * size + 100, 4 * size);
    },
  });
  t.equal(result.finalStatus, 200);
  t.ok(log.bytes.length > 5 * size, 'the log spans the injected PATCHes');
  t.same(answers, [416, 416], 'both off-offset PATCHes were answered 416');
  t.same(lab.gitlab.traceOf(job.id), log.bytes, 'GitLab holds the log once, no byte twice');
  await lab.receiver!.waitForSpans(1 + log.sections.length, 10_000);
  await lab.proxy.pipeline.flush(2000);
  const spans = lab.receiver!.spans;
  t.equal(spans.length, 1 + log.sections.length, 'one job span and one span per section: the 416 bodies were not parsed');
  const jobSpan = spans.find((s) => s.name === 'job_execution')!;
  t.equal(jobSpan.startTimeUnixNano, log.firstTimestamp);
  for (const stage of log.sections.filter((x) => x.kind === 'stage')) {
    const matching = spans.filter((s) => s.name === stage.name && s.attributes['ci.stage.attempt'] === stage.attempt);
    t.equal(matching.length, 1, `stage ${stage.name} once`);
    t.equal(matching[0]?.startTimeUnixNano, stage.startNs, `${stage.name} start`);
    t.equal(matching[0]?.endTimeUnixNano, stage.endNs, `${stage.name} end`);
  }
});

t.test('the spool stays within spool.max_bytes on disk while the collector is down', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-readme-spool-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const maxBytes = 128 * 1024;
  const lab = await startLab({
    receiver: { behaviour: () => ({ kind: 'error', code: grpcStatus.UNAVAILABLE, details: 'collector down' }) },
    proxyConfig: { spool: { dir, max_bytes: '128KiB' } },
  });
  t.teardown(() => lab.stop());
  const spoolBytes = (): number => {
    let n = 0;
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else n += statSync(join(d, e.name)).size;
      }
    };
    const endpoints = join(dir, 'endpoints');
    try {
      walk(endpoints);
    } catch {
      return 0;
    }
    return n;
  };
  let peak = 0;
  const runner = lab.runner();
  for (let i = 0; i < 40; i++) {
    const job = await runLabJob(lab, runner, {
      payload: { id: 7200 + i, contract: { kind: 'job_telemetry', traceId: TRACE, parentSpanId: '00f067aa0ba902b7' } },
    });
    t.equal(job.result.finalStatus, 200, `job ${i} unaffected`);
    peak = Math.max(peak, spoolBytes());
  }
  t.ok(peak > maxBytes / 2, `the spool filled (peak ${peak} bytes)`);
  t.ok(peak <= maxBytes, `the span spool on disk stayed within spool.max_bytes (peak ${peak} ≤ ${maxBytes})`);
});
