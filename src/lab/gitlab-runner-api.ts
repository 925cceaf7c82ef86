// GitLab's side of the runner protocol, on loopback, following the upstream
// files named in docs/runner-protocol.md: job requests (#job-request: 201 with
// the job JSON, 204 with X-GitLab-Last-Update, Workhorse-style long polling),
// job updates (#job-updates: Job-Status, 202 "come back later"), incremental
// trace PATCHes (#incremental-log: Content-Range, 202/416 with Range), artifact
// uploads and downloads (#artifacts). It records every exchange byte for byte so
// tests can compare both sides of the proxy. Used by the tests, the demo and
// the benchmarks.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

export interface RecordedExchange {
  method: string;
  path: string;
  requestHeaders: Record<string, string | string[] | undefined>;
  /** Request body (kept only up to `recordBodyLimit`; size and sha256 always). */
  requestBody?: Buffer;
  requestSize: number;
  requestSha256: string;
  status: number;
  responseHeaders: Record<string, string | number | string[]>;
  responseBody: Buffer;
}

export interface SimJob {
  id: number;
  token: string;
  payload: Record<string, unknown>;
  /** Log bytes GitLab accepted, in order. */
  trace: Buffer[];
  traceSize: number;
  state: 'pending' | 'running' | 'success' | 'failed' | 'canceled';
  updates: Record<string, unknown>[];
  /** Answers to give to the final PUT before 200 (e.g. [202, 202]). */
  finalAnswers: number[];
  /** `Job-Status` to report on PUT/PATCH responses (e.g. 'canceling'). */
  jobStatus?: string;
  artifactsUploaded: { size: number; sha256: string }[];
}

export interface GitLabRunnerApiOptions {
  /** The runner authentication token (`glrt-…`) that may request jobs. */
  runnerToken: string;
  /**
   * Workhorse long polling (docs/simulators.md#gitlab-runner-api): how long a job request
   * carrying an up-to-date `last_update` waits on the runner's queue before Workhorse
   * answers 204 itself. 0: no long polling, Rails answers at once.
   */
  longPollMs?: number;
  /** Answer 201 payloads gzip-encoded when the runner accepts it. */
  gzipPayloads?: boolean;
  /** Keep request bodies up to this size in the record (default 2 MiB). */
  recordBodyLimit?: number;
  /** Record exchanges at all (benchmarks switch it off). */
  record?: boolean;
  /** `X-GitLab-Trace-Update-Interval` on PATCH answers (default 3). */
  traceUpdateInterval?: number;
  /**
   * The Job Router this instance advertises on GET /api/v4/runners/router/discovery
   * (200 `{server_url}`); absent: 501, as an instance without the router answers
   * (docs/simulators.md#gitlab-runner-api).
   */
  jobRouterServerUrl?: string;
  /**
   * Artifacts live in object storage: a download asking `direct_download=true` is answered
   * `302` to this simulator's own object-storage path, which serves the bytes without a token
   * (a presigned URL), so they never cross a proxy in front (docs/simulators.md#gitlab-runner-api).
   */
  artifactsInObjectStorage?: boolean;
}

const JSON_TYPE = 'application/json';

function send(res: http.ServerResponse, status: number, headers: Record<string, string | number>, body: Buffer | string = ''): void {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { ...headers, 'Content-Length': buf.length });
  res.end(buf);
}

export class GitLabRunnerApiSimulator {
  readonly exchanges: RecordedExchange[] = [];
  readonly jobs = new Map<number, SimJob>();
  /** Request body bytes received so far, every request together (tests wait on it to cut an upload mid-way). */
  bytesReceived = 0;
  /** Artifact archive sizes served by GET /api/v4/jobs/:id/artifacts. */
  readonly artifactSizes = new Map<number, number>();
  private readonly queue: SimJob[] = [];
  private readonly waiting = new Set<() => void>();
  private readonly server: http.Server;
  private lastUpdate = randomBytes(8).toString('hex');
  private port = 0;

  constructor(readonly options: GitLabRunnerApiOptions) {
    this.server = http.createServer({ keepAliveTimeout: 120_000, requestTimeout: 0 }, (req, res) => this.handle(req, res));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Job requests Workhorse is holding in a long-poll watch right now. */
  get watching(): number {
    return this.waiting.size;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const wake of this.waiting) wake();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Queues a job; the next job request gets it. */
  enqueue(payload: Record<string, unknown>, opts: { finalAnswers?: number[]; jobStatus?: string } = {}): SimJob {
    const id = payload.id as number;
    const token = payload.token as string;
    const job: SimJob = {
      id,
      token,
      payload,
      trace: [],
      traceSize: 0,
      state: 'pending',
      updates: [],
      finalAnswers: [...(opts.finalAnswers ?? [])],
      jobStatus: opts.jobStatus,
      artifactsUploaded: [],
    };
    this.jobs.set(id, job);
    this.queue.push(job);
    this.lastUpdate = randomBytes(8).toString('hex');
    for (const wake of this.waiting) wake();
    return job;
  }

  traceOf(jobId: number): Buffer {
    const job = this.jobs.get(jobId);
    return job ? Buffer.concat(job.trace) : Buffer.alloc(0);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    const hash = createHash('sha256');
    const limit = this.options.recordBodyLimit ?? 2 * 1024 * 1024;
    // Bodies the API reads (JSON, log chunks ≤ 1 MiB) are kept; artifact streams are only digested.
    const keep = 2 * 1024 * 1024;
    req.on('data', (c: Buffer) => {
      size += c.length;
      this.bytesReceived += c.length;
      hash.update(c);
      if (size <= keep) chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const sha256 = hash.digest('hex');
      const record = this.options.record !== false;
      const path = req.url ?? '';
      if (record) {
        // Capture what this handler sends, byte for byte, for the proxy identity tests.
        const origWriteHead = res.writeHead.bind(res);
        const origEnd = res.end.bind(res);
        let status = 0;
        let headers: Record<string, string | number | string[]> = {};
        res.writeHead = ((s: number, h?: Record<string, string | number | string[]>) => {
          status = s;
          headers = h ?? {};
          return origWriteHead(s, h);
        }) as typeof res.writeHead;
        res.end = ((b?: Buffer) => {
          this.exchanges.push({
            method: req.method ?? '',
            path,
            requestHeaders: { ...req.headers },
            requestBody: size <= limit ? body : undefined,
            requestSize: size,
            requestSha256: sha256,
            status,
            responseHeaders: headers,
            responseBody: Buffer.isBuffer(b) ? b : Buffer.alloc(0),
          });
          return origEnd(b);
        }) as typeof res.end;
      }
      this.route(req, res, path, body, { size, sha256 });
    });
  }

  private route(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    path: string,
    body: Buffer,
    digest: { size: number; sha256: string },
  ): void {
    const pathname = path.split('?')[0]!;
    if (req.method === 'POST' && pathname === '/api/v4/jobs/request') return this.jobRequest(req, res, body);
    if (req.method === 'POST' && pathname === '/api/v4/runners/verify') {
      const token = (JSON.parse(body.toString() || '{}') as { token?: string }).token;
      return token === this.options.runnerToken
        ? send(res, 200, { 'Content-Type': JSON_TYPE }, '{"id":1,"token":"redacted"}')
        : send(res, 403, { 'Content-Type': JSON_TYPE }, '{"message":"403 Forbidden"}');
    }
    if (req.method === 'GET' && pathname === '/api/v4/runners/router/discovery') return this.routerDiscovery(req, res);
    let m = /^\/api\/v4\/jobs\/(\d+)\/trace$/.exec(pathname);
    if (m && req.method === 'PATCH') return this.tracePatch(req, res, Number(m[1]), body);
    m = /^\/api\/v4\/jobs\/(\d+)\/artifacts$/.exec(pathname);
    if (m && req.method === 'POST') return this.artifactUpload(req, res, Number(m[1]), digest);
    if (m && req.method === 'GET') return this.artifactDownload(req, res, Number(m[1]), path);
    m = /^\/object-storage\/artifacts\/(\d+)$/.exec(pathname);
    if (m && req.method === 'GET' && this.options.artifactsInObjectStorage) return this.serveArtifact(res, Number(m[1]));
    m = /^\/api\/v4\/jobs\/(\d+)$/.exec(pathname);
    if (m && req.method === 'PUT') return this.jobUpdate(req, res, Number(m[1]), body);
    send(res, 404, { 'Content-Type': JSON_TYPE }, '{"error":"404 Not Found"}');
  }

  private routerDiscovery(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.headers['runner-token'] !== this.options.runnerToken) {
      return send(res, 403, { 'Content-Type': JSON_TYPE }, '{"message":"403 Forbidden"}');
    }
    const serverUrl = this.options.jobRouterServerUrl;
    if (!serverUrl) return send(res, 501, { 'Content-Type': JSON_TYPE }, '{"message":"501 Not Implemented"}');
    send(res, 200, { 'Content-Type': JSON_TYPE }, JSON.stringify({ server_url: serverUrl }));
  }

  private jobRequest(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    let parsed: { token?: string; last_update?: string };
    try {
      parsed = JSON.parse(body.toString()) as typeof parsed;
    } catch {
      return send(res, 400, { 'Content-Type': JSON_TYPE }, '{"error":"token is missing"}');
    }
    const wait = this.options.longPollMs ?? 0;
    // Workhorse marks every job request it handles while long polling is on.
    const polling: Record<string, string> = wait > 0 ? { 'Gitlab-Ci-Builds-Polling': 'yes' } : {};
    // Rails (lib/api/ci/runner.rb, job_request.rb): 403 for a bad token, 201 with a job, else 204 with the queue's value.
    const answer = (): void => {
      if (parsed.token !== this.options.runnerToken) {
        return send(res, 403, { ...polling, 'Content-Type': JSON_TYPE }, '{"message":"403 Forbidden"}');
      }
      const job = this.queue.shift();
      if (!job) {
        return send(res, 204, { ...polling, 'X-GitLab-Last-Update': this.lastUpdate });
      }
      job.state = 'running';
      let payload: Buffer = Buffer.from(JSON.stringify(job.payload));
      const headers: Record<string, string | number> = { ...polling, 'Content-Type': JSON_TYPE };
      if (this.options.gzipPayloads && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
        payload = gzipSync(payload);
        headers['Content-Encoding'] = 'gzip';
      }
      send(res, 201, headers, payload);
    };
    // Workhorse (workhorse/internal/builds/register.go): without a token or last_update, or when
    // the queue changed since last_update, the request goes to Rails at once. Otherwise it
    // watches the queue, and on a change seen or on timeout answers 204 itself, without
    // X-GitLab-Last-Update; the runner polls again and Rails hands out the job then.
    if (wait === 0 || !parsed.token || !parsed.last_update || parsed.last_update !== this.lastUpdate) return answer();
    const wake = (): void => {
      clearTimeout(timer);
      this.waiting.delete(wake);
      send(res, 204, polling);
    };
    const timer = setTimeout(wake, wait);
    this.waiting.add(wake);
  }

  private authJob(req: http.IncomingMessage, res: http.ServerResponse, jobId: number): SimJob | undefined {
    const job = this.jobs.get(jobId);
    if (!job) {
      send(res, 404, { 'Content-Type': JSON_TYPE }, '{"message":"404 Not Found"}');
      return undefined;
    }
    if (req.headers['job-token'] !== job.token) {
      send(res, 403, { 'Content-Type': JSON_TYPE }, '{"message":"403 Forbidden"}');
      return undefined;
    }
    return job;
  }

  private jobUpdate(req: http.IncomingMessage, res: http.ServerResponse, jobId: number, body: Buffer): void {
    const job = this.authJob(req, res, jobId);
    if (!job) return;
    const update = JSON.parse(body.toString() || '{}') as { state?: string; token?: string };
    job.updates.push(update);
    const headers: Record<string, string | number> = { 'Job-Status': job.jobStatus ?? job.state };
    if (update.state === 'success' || update.state === 'failed') {
      const next = job.finalAnswers.shift();
      if (next !== undefined && next !== 200) {
        if (next === 202) headers['X-GitLab-Trace-Update-Interval'] = '0';
        if (next === 412) {
          // "trace validation failed": GitLab drops its copy; the runner re-uploads from 0.
          job.trace = [];
          job.traceSize = 0;
        }
        return send(res, next, headers, String(next));
      }
      job.state = update.state;
      headers['Job-Status'] = job.state;
    }
    send(res, 200, headers, '200');
  }

  private tracePatch(req: http.IncomingMessage, res: http.ServerResponse, jobId: number, body: Buffer): void {
    const job = this.authJob(req, res, jobId);
    if (!job) return;
    const range = /^(\d+)-(\d+)$/.exec(String(req.headers['content-range'] ?? ''));
    if (!range) return send(res, 400, { 'Content-Type': JSON_TYPE }, '{"message":"400 Bad request - Missing header Content-Range"}');
    const start = Number(range[1]);
    const headers = {
      'Job-Status': job.jobStatus ?? job.state,
      'X-GitLab-Trace-Update-Interval': String(this.options.traceUpdateInterval ?? 3),
    };
    // Rails appends at `start` and answers 416 with its own size when the runner is off.
    if (start !== job.traceSize) {
      return send(res, 416, { ...headers, Range: `0-${job.traceSize}` });
    }
    job.trace.push(body);
    job.traceSize += body.length;
    send(res, 202, { ...headers, Range: `0-${job.traceSize}` });
  }

  private artifactUpload(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    jobId: number,
    digest: { size: number; sha256: string },
  ): void {
    const job = this.authJob(req, res, jobId);
    if (!job) return;
    job.artifactsUploaded.push(digest);
    send(res, 201, { 'Content-Type': JSON_TYPE }, '{"message":"201 Created"}');
  }

  /**
   * GET /api/v4/jobs/:id/artifacts, as Rails answers it (`get '/:id/artifacts'`,
   * `authenticate_job_via_dependent_job!`): 401 unless the `JOB-TOKEN` (or `token`)
   * is a running job's, 403 for an unknown job, 404 without artifacts; the archive,
   * or with `direct_download=true` and object storage, a 302 to it.
   */
  private artifactDownload(req: http.IncomingMessage, res: http.ServerResponse, jobId: number, path: string): void {
    const q = path.indexOf('?');
    const query = new URLSearchParams(q < 0 ? '' : path.slice(q + 1));
    const token = query.get('token') || req.headers['job-token'];
    if (![...this.jobs.values()].some((j) => j.state === 'running' && j.token === token)) {
      return send(res, 401, { 'Content-Type': JSON_TYPE }, '{"message":"401 Unauthorized"}');
    }
    if (!this.jobs.has(jobId) && !this.artifactSizes.has(jobId)) {
      return send(res, 403, { 'Content-Type': JSON_TYPE }, '{"message":"403 Forbidden"}');
    }
    if (!this.artifactSizes.has(jobId)) return send(res, 404, { 'Content-Type': JSON_TYPE }, '{"message":"404 Not Found"}');
    if (this.options.artifactsInObjectStorage && query.get('direct_download') === 'true') {
      // Grape's `redirect`: 302, Location, and a short text body naming the URL.
      const location = `${this.url}/object-storage/artifacts/${jobId}`;
      return send(
        res,
        302,
        { Location: location, 'Content-Type': 'text/plain' },
        `This resource has been moved temporarily to ${location}.`,
      );
    }
    this.serveArtifact(res, jobId);
  }

  /** Serves `size` deterministic bytes as the job's artifacts archive (set with `artifactSizes`). */
  private serveArtifact(res: http.ServerResponse, jobId: number): void {
    const bytes = this.artifactSizes.get(jobId);
    if (bytes === undefined) return send(res, 404, { 'Content-Type': JSON_TYPE }, '{"message":"404 Not Found"}');
    res.writeHead(200, { 'Content-Type': 'application/zip', 'Content-Length': bytes });
    const block = Buffer.alloc(Math.min(bytes, 64 * 1024), 7);
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, block.length);
        left -= n;
        if (!res.write(n === block.length ? block : block.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  }
}
