// What crosses the proxy: byte identity except the documented edits, headers,
// streaming, refusals, bad input.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { memoryLogger } from '../support/memory-logger.js';
import { startLab, runLabJob, type Lab } from '../../src/lab/lab.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import type { SentExchange } from '../../src/lab/runner.js';
import type { RecordedExchange } from '../../src/lab/gitlab-runner-api.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

/** Pairs what the runner sent with what GitLab received, in order. */
function pairs(lab: Lab, sent: SentExchange[]): [SentExchange, RecordedExchange][] {
  t.equal(sent.length, lab.gitlab.exchanges.length, 'every runner call reached GitLab exactly once');
  return sent.map((s, i) => [s, lab.gitlab.exchanges[i]!]);
}

/**
 * Where the value of the first `key` member after `from` starts and ends in JSON text
 * (end exclusive). A scanner of its own, so the test does not lean on the proxy's.
 */
function memberValue(text: string, key: string, from: number): { start: number; end: number } {
  const at = text.indexOf(key, from);
  if (at < 0) throw new Error(`${key} not found`);
  const start = at + key.length;
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
      if (depth === 0) return { start, end: i + 1 };
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return { start, end: i + 1 };
    } else if (depth === 0 && (c === ',' || c === '}')) return { start, end: i };
  }
  throw new Error(`${key}: value not terminated`);
}

t.test('byte identity except the documented payload edits', async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  const job = await runLabJob(lab, runner, {
    payload: {
      id: 2001,
      contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT, endpoints: [{ url: 'grpcs://otel.example:4317' }] },
    },
    scenario: 'user-sections',
    patchSizes: [100, 33, 4096],
  });
  t.equal(job.result.finalStatus, 200);
  for (const [s, g] of pairs(lab, runner.sent)) {
    t.equal(g.method, s.method);
    t.equal(g.path, s.path, `${s.method} ${s.path}: path unchanged`);
    if (s.path === '/api/v4/jobs/request') {
      // Byte identity outside the edits: the expectation is the original bytes with exactly
      // the documented edits spliced in, compared as bytes (not as parsed JSON).
      const sentText = s.requestBody.toString('latin1');
      const features = memberValue(sentText, '"features":', sentText.indexOf('"info":'));
      const sep = sentText[features.start + 1] === '}' ? '' : ',';
      const expectedRequest = `${sentText.slice(0, features.start + 1)}"job_telemetry":true${sep}${sentText.slice(features.start + 1)}`;
      t.same(g.requestBody, Buffer.from(expectedRequest, 'latin1'), 'job request: the original bytes plus the advertisement, nothing else');
      const original = JSON.parse(g.responseBody.toString());
      const delivered = JSON.parse(s.rawBody.toString());
      t.ok(original.features.tracing, 'GitLab sent features.tracing');
      t.notOk('tracing' in delivered.features, 'the runner does not get features.tracing (native span replaced)');
      const added = delivered.variables.slice(original.variables.length);
      t.same(
        added.map((v: { key: string; public: boolean; masked: boolean }) => [v.key, v.public, v.masked]),
        [
          ['TRACEPARENT', true, false],
          ['TRACESTATE', true, false],
        ],
        'TRACEPARENT and TRACESTATE appended, public and unmasked',
      );
      // The payload: GitLab's bytes minus the features.tracing member, plus the two variables
      // appended to `variables`; every other byte where it was.
      const text = g.responseBody.toString('latin1');
      const tracing = memberValue(text, '"tracing":', text.indexOf('"features":'));
      const member = { start: text.lastIndexOf('"tracing":', tracing.start), end: tracing.end };
      const withoutTracing =
        text[member.end] === ','
          ? text.slice(0, member.start) + text.slice(member.end + 1)
          : text.slice(0, text[member.start - 1] === ',' ? member.start - 1 : member.start) + text.slice(member.end);
      const variables = memberValue(withoutTracing, '"variables":', 0);
      const appended = (added as { key: string; value: string }[])
        .map((v) => `,${JSON.stringify({ key: v.key, value: v.value, public: true, masked: false })}`)
        .join('');
      const expected = withoutTracing.slice(0, variables.end - 1) + appended + withoutTracing.slice(variables.end - 1);
      t.same(s.rawBody, Buffer.from(expected, 'latin1'), "job payload: byte for byte GitLab's, outside the documented edits");
      t.equal(s.headers['content-length'], String(s.rawBody.length), 'length matches the edited body');
    } else {
      t.same(g.requestBody, s.requestBody, `${s.method} ${s.path}: request body identical`);
      t.same(s.rawBody, g.responseBody, `${s.method} ${s.path}: response body identical`);
    }
    t.equal(s.status, g.status);
    for (const [name, value] of Object.entries(g.responseHeaders)) {
      if (/^content-length$/i.test(name)) continue;
      t.equal(String(s.headers[name.toLowerCase()]), String(value), `response header ${name} forwarded`);
    }
    // Every request header the runner set reaches GitLab with its value; only Host is rewritten.
    for (const [name, value] of Object.entries(s.requestHeaders)) {
      if (name === 'host') continue;
      if (name === 'content-length' && s.path === '/api/v4/jobs/request') {
        t.equal(g.requestHeaders[name], String(g.requestBody!.length), 'job request: Content-Length of the edited body');
        continue;
      }
      t.equal(String(g.requestHeaders[name]), String(value), `${s.method} ${s.path}: request header ${name} forwarded`);
    }
    t.equal(g.requestHeaders['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For added');
    t.equal(g.requestHeaders.host, new URL(lab.gitlab.url).host, 'Host is the upstream');
  }
  t.same(lab.gitlab.traceOf(2001), job.log.bytes, 'GitLab holds the exact log');
});

t.test('gzip-encoded payloads: read for telemetry, edited payload re-encoded, untouched one forwarded as is', async (t) => {
  const lab = await startLab({ gitlab: { gzipPayloads: true } });
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  await runLabJob(lab, runner, { payload: { id: 2101, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } } });
  await runLabJob(lab, runner, { payload: { id: 2102, contract: { kind: 'none' } } });
  const [edited, plain] = runner.sent.filter((e) => e.status === 201);
  t.equal(edited!.headers['content-encoding'], 'gzip');
  const payload = JSON.parse(gunzipSync(edited!.rawBody).toString());
  t.ok(
    payload.variables.some((v: { key: string }) => v.key === 'TRACEPARENT'),
    'edited payload decodes with TRACEPARENT',
  );
  const upstream = lab.gitlab.exchanges.filter((e) => e.status === 201)[1]!;
  t.same(plain!.rawBody, upstream.responseBody, 'a payload without telemetry keeps its original gzip bytes');
  await lab.receiver!.waitFor((s) => s.some((x) => x.name === 'job_execution'));
});

t.test('artifact upload streams through unchanged (chunked, 64 MiB)', async (t) => {
  const lab = await startLab({ gitlab: { recordBodyLimit: 0 } });
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  const payload = makeJobPayload({ id: 2201 });
  lab.gitlab.enqueue(payload);
  const job = (await runner.requestJob())!;
  const bytes = 64 * 1024 * 1024;
  const ex = await runner.uploadArtifact(job, bytes);
  t.equal(ex.status, 201);
  const got = lab.gitlab.jobs.get(2201)!.artifactsUploaded[0]!;
  t.ok(got.size > bytes, 'GitLab received the whole multipart stream');
  const up = lab.gitlab.exchanges.find((e) => e.path.includes('/artifacts'))!;
  t.equal(up.requestHeaders['transfer-encoding'], 'chunked', 'still chunked upstream');
  t.same(got, ex.streamed, 'GitLab received exactly the bytes the runner streamed');
  lab.gitlab.artifactSizes.set(2201, 5 * 1024 * 1024);
  const dl = await runner.call('GET', '/api/v4/jobs/2201/artifacts', { 'JOB-TOKEN': job.token });
  t.equal(dl.status, 200);
  t.equal(dl.rawBody.length, 5 * 1024 * 1024);
  t.equal(
    createHash('sha256').update(dl.rawBody).digest('hex'),
    createHash('sha256')
      .update(Buffer.alloc(5 * 1024 * 1024, 7))
      .digest('hex'),
  );
});

t.test('not an open proxy: absolute-form targets and CONNECT are refused', async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  const port = lab.proxy.address.port;
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'GET', path: 'http://example.com/api/v4/jobs/request' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(status, 400);
  const connect = await new Promise<string>((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'));
    let data = '';
    sock.on('data', (d) => (data += d.toString()));
    sock.on('end', () => resolve(data));
    sock.on('error', reject);
    setTimeout(() => resolve(data), 3000).unref();
  });
  t.match(connect, /^HTTP\/1\.1 405/);
  t.equal(lab.gitlab.exchanges.length, 0, 'nothing reached GitLab');
});

t.test('upstream unreachable: the runner gets a 502 it will retry', async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  await lab.gitlab.stop();
  const runner = lab.runner();
  const ex = await runner.call('POST', '/api/v4/runners/verify', { 'Content-Type': 'application/json' }, Buffer.from('{}'));
  t.equal(ex.status, 502);
  t.match(JSON.parse(ex.rawBody.toString()), { message: /upstream/ });
});

t.test('bad 201 bodies are forwarded unchanged with one clear warning', async (t) => {
  const cases: [string, string | Buffer, RegExp][] = [
    ['not JSON', 'this is not json', /not valid JSON/],
    ['truncated', '{"id": 12, "token": "glcbt-x", "features": {"tracing": {"trace_id"', /not valid JSON/],
    [
      'wrong id type',
      JSON.stringify({ id: 'twelve', features: { tracing: { trace_id: TRACE, span_parent_id: PARENT } } }),
      /no valid numeric "id"/,
    ],
    [
      'non-hex trace id',
      JSON.stringify({ id: 13, variables: [], features: { tracing: { trace_id: 'z'.repeat(32), span_parent_id: PARENT } } }),
      /trace_id is .* expected 32 lowercase hex/,
    ],
    [
      'short seed trace id',
      JSON.stringify({
        id: 15,
        variables: [],
        features: { job_telemetry: true },
        trace_context: { trace_id: 'abc', parent_span_id: PARENT },
      }),
      /trace_context.trace_id/,
    ],
    ['tracing not an object', JSON.stringify({ id: 16, variables: [], features: { tracing: 'yes' } }), /features.tracing is not an object/],
  ];
  for (const [name, body, warning] of cases) {
    const log = memoryLogger();
    const lab = await startLab({ log });
    const raw = Buffer.from(body);
    // Serve the raw bytes as GitLab would: 201, application/json.
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(201, { 'Content-Type': 'application/json', 'Content-Length': raw.length }).end(raw));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const { startRunnerProxy } = await import('../../src/runner-proxy/runtime.js');
    const { validateConfig } = await import('../../src/runner-proxy/config/schema.js');
    const { envDefaults } = await import('../../src/runner-proxy/config/load.js');
    const proxy = await startRunnerProxy(
      validateConfig({ listen: '127.0.0.1:0', admin: null, upstream: { url: `http://127.0.0.1:${port}` } }, envDefaults({}).defaults),
      { log },
    );
    const res = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: proxy.address.port,
          method: 'POST',
          path: '/api/v4/jobs/request',
          headers: { 'Content-Type': 'application/json' },
        },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks) }));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ token: 'glrt-x', info: { features: {} } }));
    });
    t.equal(res.status, 201, `${name}: status forwarded`);
    t.same(res.body, raw, `${name}: body forwarded byte for byte`);
    const warnings = log.lines.filter((l) => l.level === 'warn');
    t.equal(warnings.length, 1, `${name}: exactly one warning`);
    t.match(warnings[0]?.msg, warning, `${name}: the warning names the problem`);
    t.equal(log.lines.filter((l) => l.level === 'error').length, 0, `${name}: no error`);
    await proxy.stop();
    await new Promise<void>((r) => server.close(() => r()));
    await lab.stop();
  }
});

t.test('a payload over max_payload_bytes streams through untouched, with a warning', async (t) => {
  const log = memoryLogger();
  const lab = await startLab({ log, proxyConfig: { telemetry: { max_payload_bytes: '64KiB' } } });
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  const job = await runLabJob(lab, runner, {
    payload: { id: 2301, padVariables: 1000, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
  });
  t.equal(job.result.finalStatus, 200);
  const sent = lab.gitlab.exchanges.find((e) => e.status === 201)!;
  t.ok(sent.responseBody.length > 64 * 1024);
  t.same(runner.sent.find((e) => e.status === 201)!.rawBody, sent.responseBody);
  t.ok(log.lines.some((l) => l.level === 'warn' && /max_payload_bytes/.test(l.msg)));
  await lab.proxy.pipeline.flush(2000);
  t.equal(lab.receiver!.spans.length, 0, 'no telemetry for that job');
});

t.test('a runner that goes away mid-upload or mid-download does not disturb the proxy', async (t) => {
  const lab = await startLab({ gitlab: { recordBodyLimit: 0 } });
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  lab.gitlab.enqueue(makeJobPayload({ id: 2401 }));
  const job = (await runner.requestJob())!;
  const port = lab.proxy.address.port;
  // Upload: send part of a chunked body, then drop the connection.
  await new Promise<void>((resolve) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/api/v4/jobs/2401/artifacts',
      headers: { 'JOB-TOKEN': job.token, 'Transfer-Encoding': 'chunked', 'Content-Type': 'multipart/form-data; boundary=x' },
    });
    req.on('error', () => resolve());
    req.write(Buffer.alloc(256 * 1024, 1));
    setTimeout(() => {
      req.destroy();
      resolve();
    }, 100);
  });
  // Download: read a little of a large archive, then drop the connection.
  lab.gitlab.artifactSizes.set(2401, 64 * 1024 * 1024);
  await new Promise<void>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/api/v4/jobs/2401/artifacts', headers: { 'JOB-TOKEN': job.token } }, (res) => {
      res.once('data', () => {
        res.destroy();
        resolve();
      });
    });
    req.on('error', () => resolve());
  });
  const after = await runner.call(
    'POST',
    '/api/v4/runners/verify',
    { 'Content-Type': 'application/json' },
    Buffer.from(JSON.stringify({ token: lab.runnerToken })),
  );
  t.equal(after.status, 200, 'the proxy still serves');
  const health = await new Promise<{ requests_in_flight: number }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: lab.proxy.adminAddress!.port, path: '/healthz' }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(JSON.parse(body)));
      })
      .on('error', reject);
  });
  t.equal(health.requests_in_flight, 0, 'the aborted exchanges are not left hanging');
});
