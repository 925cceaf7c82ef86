// Artifact transfer bytes as a CI/CD metric (docs/metrics.md#artifact-transfers):
// the runner simulator uploads a multipart archive and downloads a dependency's
// archive through the real proxy, against the GitLab simulator with its
// artifacts in object storage. The counter is read byte for byte on the admin
// /metrics (a real text-format parser) and on the OTLP receiver (the proxy's
// final export at stop, decoded by the real receiver).
import t from 'tap';
import http from 'node:http';
import { startLab } from '../../src/lab/lab.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';
import { CI } from '../../src/telemetry/attributes.js';
import { CI_METRIC, METRIC_ATTR } from '../../src/runner-proxy/job/ci-metrics.js';
import { parseExposition } from '../support/prometheus-text.js';
import { get } from '../support/http-get.js';

const FAMILY = 'ci_artifact_io_total';
const LABEL = { direction: 'ci_artifact_direction', outcome: 'ci_artifact_outcome', executor: 'ci_runner_executor' } as const;

/** Polls `check` until it holds; bounded. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('upload and download bytes through the proxy, by direction, outcome and executor, on /metrics and OTLP', async (t) => {
  const lab = await startLab({ gitlab: { artifactsInObjectStorage: true, recordBodyLimit: 0 } });
  let stopped = false;
  t.teardown(() => (stopped ? lab.gitlab.stop().then(() => lab.receiver!.stop()) : lab.stop()));
  const runner = lab.runner({ executor: 'kubernetes' });
  const scrape = async () => {
    const text = (await get(`http://127.0.0.1:${lab.proxy.adminAddress!.port}/metrics`)).body;
    const series = parseExposition(text).series.filter((s) => s.name === FAMILY);
    return {
      text,
      series,
      bytes: (labels: Record<string, string>) =>
        series.filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0),
    };
  };

  // Job 7301 builds and uploads its archive; job 7302 depends on it.
  lab.gitlab.enqueue(makeJobPayload({ id: 7301 }));
  const builder = (await runner.requestJob())!;
  lab.gitlab.enqueue(makeJobPayload({ id: 7302 }));
  const consumer = (await runner.requestJob())!;
  t.ok(builder && consumer, 'both jobs handed out through the proxy');

  const upload = await runner.uploadArtifact(builder, 300 * 1024 + 17);
  t.equal(upload.status, 201);
  const uploaded = upload.streamed!.size;
  t.equal(lab.gitlab.jobs.get(7301)!.artifactsUploaded[0]!.size, uploaded, 'GitLab received the whole multipart body');

  const archive = 2 * 1024 * 1024 + 5;
  lab.gitlab.artifactSizes.set(7301, archive);
  const proxied = await runner.downloadArtifacts(consumer, 7301);
  t.equal(proxied.status, 200);
  t.equal(proxied.body.length, archive, 'the archive came through the proxy');

  // FF_USE_DIRECT_DOWNLOAD: two 302s through the proxy, the archive straight from object storage.
  const direct = await runner.downloadArtifacts(consumer, 7301, { directDownload: true });
  t.equal(direct.status, 200);
  t.equal(direct.body.length, archive, 'the archive came from object storage');
  t.same(
    direct.viaRunnerUrl.map((e) => e.status),
    [302, 302],
    'probe and fallback were redirected',
  );
  const redirectBytes = direct.viaRunnerUrl.reduce((n, e) => n + e.rawBody.length, 0);
  t.ok(redirectBytes > 0, 'the redirect bodies are small but not empty');

  // A token no followed job holds: GitLab refuses, and the bytes belong to no known executor.
  const stranger = await runner.call('GET', '/api/v4/jobs/7301/artifacts', { 'JOB-TOKEN': 'glcbt-not-a-running-job' });
  t.equal(stranger.status, 401);

  // An upload cut short by the runner: what crossed before the cut counts, as aborted.
  const sent = 200_000;
  const before = lab.gitlab.bytesReceived;
  const cut = http.request({
    host: '127.0.0.1',
    port: new URL(lab.proxyUrl).port,
    method: 'POST',
    path: '/api/v4/jobs/7301/artifacts?artifact_format=zip&artifact_type=archive',
    headers: { 'JOB-TOKEN': builder.token, 'Content-Type': 'multipart/form-data; boundary=x', 'Transfer-Encoding': 'chunked' },
  });
  cut.on('error', () => undefined);
  cut.write(Buffer.alloc(sent, 0x41));
  await until('GitLab received the first part of the cut upload', () => lab.gitlab.bytesReceived - before === sent);
  cut.destroy();

  await until('the cut upload is counted', async () => (await scrape()).bytes({ [LABEL.outcome]: 'aborted' }) > 0);
  const m = await scrape();
  const bytes = m.bytes;
  t.equal(
    bytes({ [LABEL.direction]: 'upload', [LABEL.outcome]: 'success', [LABEL.executor]: 'kubernetes' }),
    uploaded,
    'upload: every byte sent',
  );
  t.equal(
    bytes({ [LABEL.direction]: 'upload', [LABEL.outcome]: 'aborted', [LABEL.executor]: 'kubernetes' }),
    sent,
    'aborted: what crossed',
  );
  t.equal(
    bytes({ [LABEL.direction]: 'download', [LABEL.outcome]: 'success', [LABEL.executor]: 'kubernetes' }),
    archive,
    "download: the archive once (the object-storage copy never crossed), the downloading job's executor by its token",
  );
  t.equal(bytes({ [LABEL.direction]: 'download', [LABEL.outcome]: 'redirect' }), redirectBytes, 'redirects: their bodies only');
  t.equal(
    bytes({ [LABEL.direction]: 'download', [LABEL.outcome]: 'client_error', [LABEL.executor]: 'unknown' }),
    stranger.rawBody.length,
    "an unknown token's refused download: executor unknown",
  );
  t.equal(bytes({}), uploaded + sent + archive + redirectBytes + stranger.rawBody.length, 'nothing else counted');
  for (const s of m.series) {
    t.same(Object.keys(s.labels).sort(), [LABEL.direction, LABEL.outcome, LABEL.executor].sort(), 'three bounded labels, no job id');
  }
  for (const secret of [builder.token, consumer.token, 'object-storage', '7301', '7302']) {
    t.notOk(
      m.text.split('\n').some((l) => l.startsWith(FAMILY) && l.includes(secret)),
      `no token, URL or job id on /metrics (${secret.slice(0, 6)}…)`,
    );
  }

  // The same totals at the collector: the final export at stop.
  await lab.proxy.stop();
  stopped = true;
  const points = lab.receiver!.metrics.of(CI_METRIC.artifactIo);
  // Cumulative: the latest point of each series carries its total.
  const latest = new Map<string, (typeof points)[number]>();
  for (const p of points) {
    const key = JSON.stringify(Object.entries(p.attributes).sort());
    if ((latest.get(key)?.timeUnixNano ?? -1n) <= p.timeUnixNano) latest.set(key, p);
  }
  const total = (match: Record<string, string>) =>
    [...latest.values()]
      .filter((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v))
      .reduce((n, p) => n + (p.value ?? 0), 0);
  t.ok(points.length > 0, 'exported over OTLP');
  t.ok(
    points.every((p) => p.unit === 'By' && p.kind === 'sum'),
    'a sum in bytes',
  );
  const otlp = (direction: string, outcome: string) =>
    total({ [METRIC_ATTR.artifactDirection]: direction, [METRIC_ATTR.artifactOutcome]: outcome });
  t.equal(otlp('upload', 'success'), uploaded);
  t.equal(otlp('upload', 'aborted'), sent);
  t.equal(otlp('download', 'success'), archive);
  t.equal(otlp('download', 'redirect'), redirectBytes);
  t.equal(otlp('download', 'client_error'), stranger.rawBody.length);
  t.equal(
    points.find((p) => p.attributes[METRIC_ATTR.artifactOutcome] === 'success')?.attributes[CI.runnerExecutor],
    'kubernetes',
    'executor on OTLP too',
  );
});

t.test('metrics off: artifacts are piped uncounted, and still arrive whole', async (t) => {
  const lab = await startLab({ proxyConfig: { metrics: { enabled: false } } });
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  lab.gitlab.enqueue(makeJobPayload({ id: 7311 }));
  const job = (await runner.requestJob())!;
  const up = await runner.uploadArtifact(job, 64 * 1024);
  t.equal(up.status, 201);
  t.same(lab.gitlab.jobs.get(7311)!.artifactsUploaded[0], up.streamed);
  lab.gitlab.artifactSizes.set(7311, 70_000);
  const down = await runner.downloadArtifacts(job, 7311);
  t.equal(down.body.length, 70_000);
  const text = (await get(`http://127.0.0.1:${lab.proxy.adminAddress!.port}/metrics`)).body;
  t.notOk(text.includes(FAMILY), 'no artifact series without CI/CD metrics');
});

t.test('telemetry.thread: worker: the counts cross to the worker, executor by token there too', async (t) => {
  const lab = await startLab({ proxyConfig: { telemetry: { thread: 'worker' } } });
  t.teardown(() => lab.stop());
  const runner = lab.runner({ executor: 'shell' });
  lab.gitlab.enqueue(makeJobPayload({ id: 7321 }));
  const job = (await runner.requestJob())!;
  const up = await runner.uploadArtifact(job, 100_000);
  t.equal(up.status, 201);
  lab.gitlab.artifactSizes.set(7000, 123_456);
  const down = await runner.downloadArtifacts(job, 7000);
  t.equal(down.body.length, 123_456);
  const series = async () =>
    parseExposition((await get(`http://127.0.0.1:${lab.proxy.adminAddress!.port}/metrics`)).body).series.filter((s) => s.name === FAMILY);
  const bytes = (all: Awaited<ReturnType<typeof series>>, direction: string) =>
    all
      .filter(
        (s) => s.labels[LABEL.direction] === direction && s.labels[LABEL.outcome] === 'success' && s.labels[LABEL.executor] === 'shell',
      )
      .reduce((n, s) => n + s.value, 0);
  // /metrics is the worker's snapshot: wait (bounded) until it carries both transfers.
  await until('both transfers in the worker snapshot', async () => {
    const all = await series();
    return bytes(all, 'upload') > 0 && bytes(all, 'download') > 0;
  });
  const all = await series();
  t.equal(bytes(all, 'upload'), up.streamed!.size, 'upload, byte for byte');
  t.equal(bytes(all, 'download'), 123_456, 'download, byte for byte');
});

t.test('a download the runner abandons counts what the proxy forwarded before the cut, as aborted', async (t) => {
  const lab = await startLab();
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  lab.gitlab.enqueue(makeJobPayload({ id: 7331 }));
  const job = (await runner.requestJob())!;
  const size = 64 * 1024 * 1024;
  lab.gitlab.artifactSizes.set(7330, size);
  let received = 0;
  await new Promise<void>((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port: new URL(lab.proxyUrl).port, path: '/api/v4/jobs/7330/artifacts', headers: { 'JOB-TOKEN': job.token } },
      (res) => {
        res.once('data', (c: Buffer) => {
          received = c.length;
          req.destroy();
          resolve();
        });
      },
    );
    req.on('error', (err) => (received > 0 ? undefined : reject(err)));
  });
  const aborted = async () =>
    parseExposition((await get(`http://127.0.0.1:${lab.proxy.adminAddress!.port}/metrics`)).body)
      .series.filter((s) => s.name === FAMILY && s.labels[LABEL.direction] === 'download' && s.labels[LABEL.outcome] === 'aborted')
      .reduce((n, s) => n + s.value, 0);
  await until('the abandoned download is counted', async () => (await aborted()) > 0);
  const counted = await aborted();
  t.ok(counted >= received, `at least what the runner read (${counted} ≥ ${received})`);
  t.ok(counted < size, `not the whole archive (${counted} < ${size})`);
});
