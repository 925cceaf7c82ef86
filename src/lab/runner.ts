// gitlab-runner's side of the protocol, following the runner files named in
// docs/runner-protocol.md (#one-job-on-the-wire): the job request long poll,
// the two-phase ack (#job-updates), incremental trace PATCHes that follow the
// server's Range answers (#incremental-log: 202 advances, 416 moves the
// offset, a 412 on the final update restarts the upload from 0), the final
// update repeated on 202, and a streamed chunked artifact upload (#artifacts). It records
// what it sent and received so tests can compare both sides of the proxy.
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { crc32, gunzipSync } from 'node:zlib';
import { isJsonObject as isObject } from '../json-guards.js';

/** The largest job payload the simulator decodes (gitlab-runner reads whatever GitLab sends; ours stays bounded). */
const MAX_DECODED_PAYLOAD = 64 * 1024 * 1024;

export interface RunnerSimulatorOptions {
  /** The runner's `url` (the proxy, or GitLab directly). */
  url: string;
  token: string;
  version?: string;
  executor?: string;
  /** Largest PATCH body; the runner's DefaultTracePatchLimit is 1 MiB. */
  maxPatchBytes?: number;
  /** Bound on every single call. */
  callTimeoutMs?: number;
  /** `FF_USE_JOB_ROUTER`: discover the Job Router before requesting jobs (docs/simulators.md#runner). */
  jobRouter?: boolean;
}

/** What Job Router discovery answered, as the runner keeps it (for an hour). */
export interface RouterDiscovery {
  status: number;
  /** Set on 200: the runner then fetches jobs over gRPC from there, not through `url`. */
  serverUrl?: string;
  expiresAt: number;
}

export interface SentExchange {
  method: string;
  path: string;
  requestBody: Buffer;
  /** The request headers the runner set (lower-case names; Node's implicit Content-Length/Transfer-Encoding excluded). */
  requestHeaders: http.OutgoingHttpHeaders;
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The response body as it came off the wire (still gzip-encoded if it was). */
  rawBody: Buffer;
  /** performance.now() when the request was sent. */
  startedAt: number;
  /** Milliseconds from sending the request to the end of the response. */
  ms: number;
  /** Streamed uploads: size and digest of what was sent. */
  streamed?: { size: number; sha256: string };
}

export interface ReceivedJob {
  payload: Record<string, unknown>;
  id: number;
  token: string;
  /** Public variables by key (TRACEPARENT among them when injected). */
  variables: Record<string, string>;
}

export interface JobScript {
  log: Buffer;
  state: 'success' | 'failed';
  failureReason?: string;
  exitCode?: number;
  /** Sizes of successive PATCH bodies (the rest uses maxPatchBytes). */
  patchSizes?: number[];
  /** Bytes of a streamed artifact upload made after the log (docker helper's artifacts-uploader). */
  artifactBytes?: number;
  /** Called before each PATCH with its index, e.g. to pause like the runner's update interval. */
  beforePatch?: (index: number) => Promise<void> | void;
}

export interface JobRunResult {
  finalStatus: number;
  patches: number;
  /** The `Job-Status` GitLab last reported. */
  jobStatus?: string;
}

const FEATURES = [
  'variables',
  'image',
  'services',
  'artifacts',
  'cache',
  'fallback_cache_keys',
  'shared',
  'upload_multiple_artifacts',
  'upload_raw_artifacts',
  'session',
  'terminal',
  'refspecs',
  'masking',
  'proxy',
  'raw_variables',
  'artifacts_exclude',
  'multi_build_steps',
  'trace_reset',
  'trace_checksum',
  'trace_size',
  'vault_secrets',
  'cancelable',
  'return_exit_code',
  'service_variables',
  'service_multiple_aliases',
  'image_executor_opts',
  'service_executor_opts',
  'cancel_gracefully',
  'native_steps_integration',
  'two_phase_job_commit',
  'job_inputs',
];

/**
 * What Go's encoding/json rejects in `features.tracing` when decoding into the
 * runner's `spec.Tracing` (common/spec/spec.go): string fields must be strings
 * (or null), `otel_endpoints` an array of objects. A mismatch fails the whole
 * decode, and the runner treats the job request as failed though GitLab has
 * assigned the job (network/client.go doJSON; docs/simulators.md#runner).
 */
export function tracingTypeMismatch(payload: Record<string, unknown>): string | undefined {
  const features = payload.features;
  if (!isObject(features) || features.tracing === undefined || features.tracing === null) return undefined;
  const tracing = features.tracing;
  if (!isObject(tracing)) return 'features.tracing is not an object';
  for (const key of ['trace_id', 'span_parent_id']) {
    const v = tracing[key];
    if (v !== undefined && v !== null && typeof v !== 'string') return `features.tracing.${key} is not a string`;
  }
  const list = tracing.otel_endpoints;
  if (list === undefined || list === null) return undefined;
  if (!Array.isArray(list)) return 'features.tracing.otel_endpoints is not an array';
  const bad = list.findIndex((e) => e !== null && !isObject(e));
  return bad >= 0 ? `cannot unmarshal ${typeof list[bad]} into features.tracing.otel_endpoints[${bad}] (spec.OTELEndpoint)` : undefined;
}

export class RunnerSimulator {
  readonly sent: SentExchange[] = [];
  /** Keep `sent` (benchmarks switch it off). */
  record = true;
  /** Told of every completed call, recorded or not. */
  onCall?: (exchange: SentExchange) => void;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private readonly base: URL;
  private lastUpdate?: string;
  /** The cached discovery answer (`FF_USE_JOB_ROUTER` only). */
  routerDiscovery?: RouterDiscovery;

  constructor(private readonly options: RunnerSimulatorOptions) {
    this.base = new URL(options.url);
  }

  get info(): Record<string, unknown> {
    return {
      name: 'gitlab-runner',
      version: this.options.version ?? '19.4.0',
      revision: 'd79f3e7b',
      platform: 'linux',
      architecture: 'amd64',
      executor: this.options.executor ?? 'docker',
      shell: 'bash',
      features: Object.fromEntries(FEATURES.map((f) => [f, true])),
      config: { gpus: '' },
    };
  }

  close(): void {
    this.agent.destroy();
  }

  /** One call; resolves with the whole response. */
  call(method: string, path: string, headers: Record<string, string | number>, body?: Buffer | Readable): Promise<SentExchange> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent: this.agent,
          hostname: this.base.hostname,
          port: this.base.port,
          method,
          path: this.base.pathname.replace(/\/+$/, '') + path,
          headers: { 'User-Agent': `gitlab-runner ${this.options.version ?? '19.4.0'} (main; go1.24; linux/amd64)`, ...headers },
          timeout: this.options.callTimeoutMs ?? 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const exchange: SentExchange = {
              method,
              path,
              requestBody: Buffer.isBuffer(body) ? body : Buffer.alloc(0),
              requestHeaders: req.getHeaders(),
              status: res.statusCode ?? 0,
              headers: res.headers,
              rawBody: Buffer.concat(chunks),
              startedAt: started,
              ms: performance.now() - started,
            };
            if (this.record) this.sent.push(exchange);
            this.onCall?.(exchange);
            resolve(exchange);
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      if (body instanceof Readable) body.pipe(req);
      else req.end(body);
    });
  }

  /** GET /api/v4/runners/router/discovery, as the runner's GetRouterDiscovery sends it. */
  async discoverJobRouter(): Promise<RouterDiscovery> {
    const ex = await this.call('GET', '/api/v4/runners/router/discovery', {
      Accept: 'application/json',
      'RUNNER-TOKEN': this.options.token,
      'X-Request-Id': randomUUID().replaceAll('-', ''),
    });
    let serverUrl: string | undefined;
    if (ex.status === 200 && /^application\/json/.test(String(ex.headers['content-type']))) {
      serverUrl = (JSON.parse(ex.rawBody.toString('utf8')) as { server_url?: string }).server_url;
    }
    // The runner caches the answer, router or not, for an hour (router/client.go discoveryTTL).
    this.routerDiscovery = { status: ex.status, ...(serverUrl ? { serverUrl } : {}), expiresAt: Date.now() + 3_600_000 };
    return this.routerDiscovery;
  }

  /**
   * POST /api/v4/jobs/request; null on 204. With `jobRouter`, discovery comes
   * first (cached); a router found means the runner would fetch over gRPC from
   * it, which this simulator does not speak: null, with `routerDiscovery` set.
   */
  async requestJob(): Promise<ReceivedJob | null> {
    if (this.options.jobRouter) {
      const disco =
        this.routerDiscovery && this.routerDiscovery.expiresAt > Date.now() ? this.routerDiscovery : await this.discoverJobRouter();
      if (disco.serverUrl) return null;
    }
    const body = Buffer.from(
      JSON.stringify({ token: this.options.token, system_id: 's_0123456789ab', last_update: this.lastUpdate, info: this.info }),
    );
    const ex = await this.call(
      'POST',
      '/api/v4/jobs/request',
      {
        'Content-Type': 'application/json',
        Accept: 'application/json',
        'Accept-Encoding': 'gzip',
        'RUNNER-TOKEN': this.options.token,
        'X-Request-Id': randomUUID().replaceAll('-', ''),
        'Content-Length': body.length,
      },
      body,
    );
    const lastUpdate = ex.headers['x-gitlab-last-update'];
    if (typeof lastUpdate === 'string') this.lastUpdate = lastUpdate;
    if (ex.status === 204) return null;
    if (ex.status !== 201) throw new Error(`job request answered ${ex.status}`);
    if (!/^application\/json/.test(String(ex.headers['content-type']))) throw new Error('job payload is not JSON');
    // Bounded like the proxy's own decoding (docs/security.md#decoded-body-bound): a payload cannot inflate the simulator either.
    const gzip = ex.headers['content-encoding'] === 'gzip';
    const text = (gzip ? gunzipSync(ex.rawBody, { maxOutputLength: MAX_DECODED_PAYLOAD }) : ex.rawBody).toString('utf8');
    const payload = JSON.parse(text) as Record<string, unknown>;
    const mismatch = tracingTypeMismatch(payload);
    if (mismatch) throw new Error(`decoding json payload: ${mismatch}`);
    const variables: Record<string, string> = {};
    for (const v of (payload.variables as { key: string; value: string; public?: boolean }[] | undefined) ?? []) {
      if (v.public) variables[v.key] = v.value;
    }
    return { payload, id: payload.id as number, token: payload.token as string, variables };
  }

  private update(job: ReceivedJob, state: string, log: Buffer, script?: JobScript): Promise<SentExchange> {
    const checksum = `crc32:${crc32(log).toString(16).padStart(8, '0')}`;
    const body: Record<string, unknown> = {
      info: this.info,
      token: job.token,
      state,
      checksum,
      output: { checksum, bytesize: log.length },
    };
    if (script?.failureReason) body.failure_reason = script.failureReason;
    if (script?.exitCode) body.exit_code = script.exitCode;
    const buf = Buffer.from(JSON.stringify(body));
    return this.call(
      'PUT',
      `/api/v4/jobs/${job.id}`,
      {
        'Content-Type': 'application/json',
        'JOB-TOKEN': job.token,
        'X-Request-Id': randomUUID().replaceAll('-', ''),
        'Content-Length': buf.length,
      },
      buf,
    );
  }

  private patch(job: ReceivedJob, start: number, chunk: Buffer): Promise<SentExchange> {
    return this.call(
      'PATCH',
      `/api/v4/jobs/${job.id}/trace?debug_trace=false`,
      {
        'Content-Type': 'text/plain',
        'JOB-TOKEN': job.token,
        'Content-Range': `${start}-${start + chunk.length - 1}`,
        'X-Request-Id': randomUUID().replaceAll('-', ''),
        'Content-Length': chunk.length,
      },
      chunk,
    );
  }

  /** Streams `bytes` of a fake archive as chunked multipart, the way artifacts-uploader does. */
  async uploadArtifact(job: ReceivedJob, bytes: number): Promise<SentExchange> {
    const boundary = `----gitlab-runner-${randomUUID()}`;
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="artifacts.zip"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const block = Buffer.alloc(256 * 1024, 0x5a);
    const hash = createHash('sha256');
    let size = 0;
    function* parts(): Generator<Buffer> {
      const emit = (b: Buffer): Buffer => {
        hash.update(b);
        size += b.length;
        return b;
      };
      yield emit(head);
      let left = bytes;
      while (left > 0) {
        const n = Math.min(left, block.length);
        left -= n;
        yield emit(n === block.length ? block : block.subarray(0, n));
      }
      yield emit(tail);
    }
    const ex = await this.call(
      'POST',
      `/api/v4/jobs/${job.id}/artifacts?artifact_format=zip&artifact_type=archive&expire_in=1+day`,
      { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'JOB-TOKEN': job.token, 'Transfer-Encoding': 'chunked' },
      Readable.from(parts(), { objectMode: false }),
    );
    ex.streamed = { size, sha256: hash.digest('hex') };
    return ex;
  }

  /**
   * Fetches a dependency's artifacts as artifacts-downloader does (**R** `network/gitlab.go`
   * `DownloadArtifacts`, docs/simulators.md#runner): `JOB-TOKEN` is the running job's own token
   * (GitLab's dependency entity hands it out). With `directDownload` (FF_USE_DIRECT_DOWNLOAD), a
   * first `GET …?direct_download=true` that does not follow redirects; on a 302/307 the same URI
   * again, whose redirect is followed straight to object storage, not through `url`.
   */
  async downloadArtifacts(
    job: ReceivedJob,
    dependencyId: number,
    opts: { directDownload?: boolean } = {},
  ): Promise<{ status: number; body: Buffer; viaRunnerUrl: SentExchange[] }> {
    const path = `/api/v4/jobs/${dependencyId}/artifacts?${opts.directDownload ? 'direct_download=true' : ''}`;
    const headers = (): Record<string, string> => ({ 'JOB-TOKEN': job.token, 'X-Request-Id': randomUUID().replaceAll('-', '') });
    const first = await this.call('GET', path, headers());
    const redirected = (ex: SentExchange): string | undefined =>
      (ex.status === 302 || ex.status === 307) && typeof ex.headers.location === 'string' ? ex.headers.location : undefined;
    if (!opts.directDownload || !redirected(first)) return { status: first.status, body: first.rawBody, viaRunnerUrl: [first] };
    // The fallback after the no-redirect probe (FF_USE_PARALLEL_ARTIFACT_TRANSFER off): a normal GET that follows the redirect.
    const second = await this.call('GET', path, headers());
    const location = redirected(second);
    if (!location) return { status: second.status, body: second.rawBody, viaRunnerUrl: [first, second] };
    const stored = await this.getAbsolute(location);
    return { ...stored, viaRunnerUrl: [first, second] };
  }

  /** A GET to an absolute URL (a redirect's Location), not through the runner's `url`. */
  private getAbsolute(url: string): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = http.get(url, { timeout: this.options.callTimeoutMs ?? 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
      req.on('error', reject);
    });
  }

  /** Runs a received job to its end: ack, log upload, optional artifacts, final update. */
  async runJob(job: ReceivedJob, script: JobScript): Promise<JobRunResult> {
    const ack = await this.update(job, 'running', Buffer.alloc(0));
    let jobStatus = ack.headers['job-status'] as string | undefined;
    const max = this.options.maxPatchBytes ?? 1024 * 1024;
    const sizes = [...(script.patchSizes ?? [])];
    let offset = 0;
    let patches = 0;
    const upload = async (): Promise<void> => {
      while (offset < script.log.length) {
        const n = Math.min(sizes.shift() ?? max, max, script.log.length - offset);
        await script.beforePatch?.(patches);
        const ex = await this.patch(job, offset, script.log.subarray(offset, offset + n));
        patches++;
        jobStatus = (ex.headers['job-status'] as string | undefined) ?? jobStatus;
        const range = /^0-(\d+)$/.exec(String(ex.headers.range ?? ''));
        if (ex.status === 202) offset = range ? Number(range[1]) : offset + n;
        else if (ex.status === 416 && range) offset = Number(range[1]);
        else throw new Error(`trace PATCH answered ${ex.status}`);
        if (patches > 10_000) throw new Error('runaway log upload');
      }
    };
    await upload();
    if (script.artifactBytes !== undefined) await this.uploadArtifact(job, script.artifactBytes);
    for (let attempt = 0; attempt < 20; attempt++) {
      const ex = await this.update(job, script.state, script.log, script);
      jobStatus = (ex.headers['job-status'] as string | undefined) ?? jobStatus;
      if (ex.status === 202) continue; // "accepted, come back later"
      if (ex.status === 412) {
        // trace validation failed: re-upload the whole log, then update again
        offset = 0;
        await upload();
        continue;
      }
      return { finalStatus: ex.status, patches, jobStatus };
    }
    throw new Error('final update never completed');
  }
}
