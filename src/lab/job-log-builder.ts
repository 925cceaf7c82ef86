// Builds job logs byte for byte as gitlab-runner writes them, with the stage
// boundaries a correct parser must find. Used by tests, the runner simulator,
// the demo and the benchmarks.
//
// Follows gitlab-runner as docs/runner-protocol.md#section-markers,
// #build-stages and #timestamps describe it (plus the runner's
// shells/abstract.go and executors/docker): built-in markers and runner messages on
// stream 00; the job script *and* the helper-run stage scripts (git, cache,
// artifacts) on stream 01, because the docker executor attaches every container
// to the work-level stream. With FF_TIMESTAMPS each write goes through a port
// of the runner's timestamper (docs/job-log.md#timestamped-entries): entries
// end at `\n`; a write with `\r` and no `\n` (a marker, a progress bar) is
// flushed with an added `\n`, and so is a line past the 8 KiB buffer, the
// stream's next entry then being a `+` continuation. The output-limit notice is
// written below the stamper, so it carries no header. FF_CONCRETE jobs (the
// `concrete*` scenarios) follow docs/job-log.md#ci-steps-jobs: step-runner
// writes the stages on stream 01, their end markers with their start's seconds.
//
// Deterministic: every time comes from `start` and the stage durations.

export type JobLogScenario =
  | 'success'
  | 'script-failure'
  | 'get-sources-retry'
  | 'user-sections'
  | 'script-sections'
  | 'output-limit'
  | 'fake-builtin-marker'
  | 'progress'
  | 'concrete'
  | 'concrete-script-failure';

export const JOB_LOG_SCENARIOS: readonly JobLogScenario[] = [
  'success',
  'script-failure',
  'get-sources-retry',
  'user-sections',
  'script-sections',
  'output-limit',
  'fake-builtin-marker',
  'progress',
  'concrete',
  'concrete-script-failure',
];

export interface JobLogOptions {
  /** When the runner starts writing the log. */
  start: Date;
  /** FF_TIMESTAMPS on (runner ≥ 18.7 default) or off. */
  timestamps: boolean;
  /** Runner `output_limit` in bytes (default 4 MiB; the runner's config is KiB). */
  outputLimitBytes?: number;
  /** Extra job-script output in `step_script`, in bytes (benchmarks; lines of ~100 bytes). */
  scriptOutputBytes?: number;
  /** Milliseconds per stage, overriding the defaults. */
  durationsMs?: Partial<Record<string, number>>;
  /** Values masked by the runner (printed as `[MASKED]`). */
  masked?: string[];
}

export interface ExpectedSection {
  readonly name: string;
  /** A runner build stage (child of job_execution) or a user/script section nested in one. */
  readonly kind: 'stage' | 'section';
  /** Name of the enclosing stage or section (sections only). */
  readonly parent?: string;
  /** Epoch ns: the marker's stamp, or its whole seconds without FF_TIMESTAMPS. */
  readonly startNs: bigint;
  /** Undefined when the end marker never made it into the log (output limit). */
  readonly endNs?: bigint;
  /** 1-based, per stage name (get_sources repeats). */
  readonly attempt: number;
  /** Stages only: 'failed' for the stage in which the job failed. */
  readonly status?: 'success' | 'failed';
  readonly truncated: boolean;
  /** Enrichment a parser should find in the runner's own lines. */
  readonly attributes?: Readonly<Record<string, string | number | boolean | string[]>>;
}

export interface BuiltJobLog {
  readonly bytes: Buffer;
  readonly sections: ExpectedSection[];
  readonly outcome: { status: 'success' | 'failed'; failureReason?: string; exitCode?: number };
  /** Epoch ns of the job's final update (after the last log byte). */
  readonly endNs: bigint;
  /** First and last stamps written (FF_TIMESTAMPS only). */
  readonly firstTimestamp?: bigint;
  readonly lastTimestamp?: bigint;
  /** The output limit cut the log. */
  readonly truncated: boolean;
  /** The job token prefix and the secret the log mentions, which must never reach telemetry. */
  readonly secrets: readonly string[];
}

export const DEFAULT_OUTPUT_LIMIT_BYTES = 4096 * 1024;

const ESC = '\x1b';
const CLEAR = `${ESC}[0K`;
const RESET = `${ESC}[0;m`;
const CYAN = `${ESC}[36;1m`;
const GREEN = `${ESC}[32;1m`;
const RED = `${ESC}[31;1m`;

const DEFAULT_MS: Record<string, number> = {
  prepare_executor: 8_250,
  prepare_script: 1_130,
  get_sources: 2_475,
  clear_worktree: 310,
  restore_cache: 1_820,
  download_artifacts: 940,
  concrete: 0,
  step_script: 41_337,
  after_script: 1_204,
  archive_cache: 3_310,
  archive_cache_on_failure: 2_905,
  upload_artifacts_on_success: 2_120,
  upload_artifacts_on_failure: 1_760,
  cleanup_file_variables: 402,
};

const IMAGE = 'ruby:3.3';
const IMAGE_ID = `sha256:${'4f'.repeat(32)}`;
const IMAGE_DIGEST = `ruby@sha256:${'9c'.repeat(32)}`;
const CACHE_KEY = 'default-protected';
const TOKEN_PREFIX = '64_xZ9qTk2';
const SECRET = 's3cr3t-deploy-password';

function stamp(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const micros = Number((ns / 1000n) % 1_000_000n);
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 19)}.${String(micros).padStart(6, '0')}Z`;
}

/** One timestamper's state (the runner keeps one per stream id and type). */
interface Stamper {
  /** An unterminated entry, its header first. */
  buffered: Buffer[];
  bufferedBytes: number;
  /** The append flag of the next header. */
  flag: ' ' | '+';
}

/** The timestamper's buffer for an entry without `\n` (timestamper.go bufSize). */
export const STAMPER_BUFFER_BYTES = 8 * 1024;

/** The runner's build logger: streams, the FF_TIMESTAMPS stamper, masking and the output limit. */
export class RunnerLogWriter {
  private readonly parts: Buffer[] = [];
  private size = 0;
  private readonly stampers = new Map<string, Stamper>();
  private nowNs: bigint;
  capped = false;
  firstTimestamp: bigint | undefined;
  lastTimestamp: bigint | undefined;
  /** Called before each stamp is taken (the upstream tests' clock moves on every `now()`). */
  beforeStamp: (() => void) | undefined;

  constructor(
    start: bigint,
    private readonly timestamps: boolean,
    private readonly limit: number,
    private readonly masked: readonly string[],
  ) {
    this.nowNs = start;
  }

  get now(): bigint {
    return this.nowNs;
  }

  advance(ms: number): void {
    this.nowNs += BigInt(Math.round(ms * 1000)) * 1000n;
  }

  /**
   * One write by the runner (stream 0), the job or step-runner (stream 1), as
   * the stamper sees it: timestamper.go `Write` (writeLines, writeCarriageReturns,
   * buffer), docs/job-log.md#timestamped-entries.
   */
  write(stream: number, text: string, type: 'O' | 'E' = 'O'): void {
    if (this.capped) return;
    for (const value of this.masked) if (value) text = text.split(value).join('[MASKED]');
    const p = Buffer.from(text, 'utf8');
    if (!this.timestamps) {
      this.append(p);
      return;
    }
    const key = `${stream}${type}`;
    let st = this.stampers.get(key);
    if (!st) this.stampers.set(key, (st = { buffered: [], bufferedBytes: 0, flag: ' ' }));
    const header = () => this.header(st, stream, type);
    let n = 0;
    let nl = p.indexOf(0x0a);
    if (nl >= 0 && st.bufferedBytes > 0) {
      this.flushBuffered(st);
      this.append(p.subarray(0, nl + 1));
      n = nl + 1;
    }
    while ((nl = p.indexOf(0x0a, n)) >= 0) {
      this.append(header());
      this.append(p.subarray(n, nl + 1));
      n = nl + 1;
    }
    const rest = p.subarray(n);
    if (rest.includes(0x0d)) {
      if (st.bufferedBytes > 0) this.flushBuffered(st);
      else this.append(header());
      this.append(rest);
      this.append(Buffer.from('\n'));
      st.flag = '+';
      return;
    }
    if (rest.length === 0) return;
    if (rest.length + st.bufferedBytes > STAMPER_BUFFER_BYTES) {
      if (st.bufferedBytes === 0) this.append(header());
      this.flushBuffered(st);
      st.flag = '+';
      this.append(rest);
      this.append(Buffer.from('\n'));
      return;
    }
    if (st.bufferedBytes === 0) {
      const h = header();
      st.buffered.push(h);
      st.bufferedBytes += h.length;
    }
    st.buffered.push(Buffer.from(rest));
    st.bufferedBytes += rest.length;
  }

  /** The streams are closed at the job's end: an unterminated entry gets its `\n` (timestamper.go Close). */
  close(): void {
    for (const st of this.stampers.values()) {
      if (st.bufferedBytes === 0) continue;
      st.buffered.push(Buffer.from('\n'));
      this.flushBuffered(st);
    }
  }

  private header(st: Stamper, stream: number, type: 'O' | 'E'): Buffer {
    this.beforeStamp?.();
    const id = stream.toString(16).padStart(2, '0');
    const h = Buffer.from(`${stamp(this.nowNs)} ${id}${type}${st.flag}`, 'latin1');
    st.flag = ' ';
    this.firstTimestamp ??= this.nowNs;
    this.lastTimestamp = this.nowNs;
    return h;
  }

  private flushBuffered(st: Stamper): void {
    for (const b of st.buffered) this.append(b);
    st.buffered = [];
    st.bufferedBytes = 0;
  }

  private append(buf: Buffer): void {
    if (this.size + buf.length > this.limit) {
      const room = this.limit - this.size;
      if (room > 0) this.parts.push(buf.subarray(0, room));
      this.size = this.limit;
      const notice = `\n${ESC}[33;1mJob's log exceeded limit of ${this.limit} bytes.\nJob execution will continue but no more output will be collected.${RESET}\n`;
      this.parts.push(Buffer.from(notice, 'utf8'));
      this.capped = true;
      return;
    }
    this.parts.push(buf);
    this.size += buf.length;
  }

  bytes(): Buffer {
    this.close();
    return Buffer.concat(this.parts);
  }
}

interface Frame {
  name: string;
  kind: 'stage' | 'section';
  parent?: string;
  startNs: bigint;
  attempt: number;
  index: number;
}

class LogScript {
  readonly sections: ExpectedSection[] = [];
  private readonly attempts = new Map<string, number>();
  private readonly open: Frame[] = [];
  /** A step-runner stage whose end marker was written without a stamp: a parser can only end it at the next marker. */
  private endPending: number | undefined;

  constructor(
    readonly w: RunnerLogWriter,
    private readonly timestamps: boolean,
    private readonly durations: Record<string, number>,
  ) {}

  private markerTime(): bigint {
    return this.timestamps ? this.w.now : (this.w.now / 1_000_000_000n) * 1_000_000_000n;
  }

  private seconds(): number {
    return Number(this.w.now / 1_000_000_000n);
  }

  runner(text: string): void {
    this.w.advance(3.217);
    this.w.write(0, `${CLEAR}${text}${RESET}\n`);
  }

  job(text: string, type: 'O' | 'E' = 'O'): void {
    this.w.advance(1.093);
    this.w.write(1, `${text}\n`, type);
  }

  notice(text: string): void {
    this.job(`${GREEN}${text}${RESET}`);
  }

  /** One raw write by the job script on stream 01 (no `\n` added). */
  jobWrite(text: string, ms = 0.25): void {
    this.w.advance(ms);
    this.w.write(1, text);
  }

  /** step-runner's `Noticef` inside a FF_CONCRETE job: stderr of stream 01 (functions/concrete/run/env/env.go). */
  stepNotice(text: string): void {
    this.job(`${GREEN}${text}${RESET}`, 'E');
  }

  /** Called before every marker is written: it ends a step-runner stage whose end had no stamp. */
  private beforeMarker(): void {
    const index = this.endPending;
    if (index === undefined) return;
    this.endPending = undefined;
    const s = this.sections[index];
    if (s && !this.w.capped) this.sections[index] = { ...s, endNs: this.markerTime(), truncated: false };
  }

  /**
   * A stage step-runner writes inside a FF_CONCRETE job (functions/concrete/run/runner.go `section`):
   * markers on stream 01 stdout, no header line, and the end marker carries the
   * start's seconds because Go evaluates a deferred call's arguments when the
   * defer statement runs (docs/job-log.md#ci-steps-jobs).
   */
  stepStage(
    name: string,
    body: () => void,
    opts: { status?: 'success' | 'failed'; attributes?: ExpectedSection['attributes'] } = {},
  ): void {
    if (this.w.capped) return;
    const attempt = (this.attempts.get(name) ?? 0) + 1;
    this.attempts.set(name, attempt);
    this.w.advance(0.311);
    this.beforeMarker();
    const startNs = this.markerTime();
    const startSeconds = this.seconds();
    this.w.write(1, `section_start:${startSeconds}:${name}\r${CLEAR}`);
    const index = this.sections.length;
    if (!this.w.capped) {
      this.sections.push({
        name,
        kind: 'stage',
        startNs,
        attempt,
        status: opts.status ?? 'success',
        truncated: true,
        ...(opts.attributes ? { attributes: opts.attributes } : {}),
      });
    }
    this.open.push({ name, kind: 'stage', startNs, attempt, index });
    body();
    const target = this.w.now + BigInt(this.durations[name] ?? 1000) * 1_000_000n;
    const frame = this.open.pop()!;
    if (this.w.now < target) this.w.advance(Number(target - this.w.now) / 1e6);
    this.close(frame, `section_end:${startSeconds}:${name}\r${CLEAR}`, 1);
    if (!this.timestamps && !this.w.capped) this.endPending = index;
  }

  /** A user section whose marker and header are two writes: the marker's `\r` flushes it, and the header continues it. */
  userSectionInTwoWrites(name: string, header: string, body: () => void): void {
    if (this.w.capped) return;
    this.w.advance(2.5);
    this.beforeMarker();
    const parent = this.open[this.open.length - 1]?.name;
    const startNs = this.markerTime();
    this.w.write(1, `section_start:${this.seconds()}:${name}[collapsed=true]\r`);
    this.w.advance(0.004);
    this.w.write(1, `${CLEAR}${header}\n`);
    const index = this.sections.length;
    if (!this.w.capped) this.sections.push({ name, kind: 'section', ...(parent ? { parent } : {}), startNs, attempt: 1, truncated: true });
    this.open.push({ name, kind: 'section', startNs, attempt: 1, index, ...(parent ? { parent } : {}) });
    body();
    this.w.advance(1.25);
    const frame = this.open.pop()!;
    this.close(frame, `${CLEAR}section_end:${this.seconds()}:${name}\r${CLEAR}\n`, 1);
  }

  stage(
    name: string,
    header: string,
    body: () => void,
    opts: { status?: 'success' | 'failed'; attributes?: ExpectedSection['attributes'] } = {},
  ): void {
    if (this.w.capped) return;
    const attempt = (this.attempts.get(name) ?? 0) + 1;
    this.attempts.set(name, attempt);
    this.w.advance(0.711);
    this.beforeMarker();
    const startNs = this.markerTime();
    this.w.write(0, `section_start:${this.seconds()}:${name}\r${CLEAR}`);
    const index = this.sections.length;
    if (!this.w.capped) {
      this.sections.push({
        name,
        kind: 'stage',
        startNs,
        attempt,
        status: opts.status ?? 'success',
        truncated: true,
        ...(opts.attributes ? { attributes: opts.attributes } : {}),
      });
    }
    this.open.push({ name, kind: 'stage', startNs, attempt, index });
    this.w.write(0, `${CLEAR}${CYAN}${header}${RESET}\n`);
    body();
    const target = this.w.now + BigInt(this.durations[name] ?? 1000) * 1_000_000n;
    const frame = this.open.pop()!;
    if (this.w.now < target) this.w.advance(Number(target - this.w.now) / 1e6);
    this.close(frame, `section_end:${this.seconds()}:${name}\r${CLEAR}`, 0);
  }

  /** A collapsible section printed by the job script (documented form, stream 01). */
  userSection(name: string, header: string, body: () => void, options = ''): void {
    if (this.w.capped) return;
    this.w.advance(2.5);
    this.beforeMarker();
    const parent = this.open[this.open.length - 1]?.name;
    const startNs = this.markerTime();
    this.w.write(1, `${CLEAR}section_start:${this.seconds()}:${name}${options}\r${CLEAR}${header}\n`);
    const index = this.sections.length;
    if (!this.w.capped) {
      this.sections.push({ name, kind: 'section', ...(parent ? { parent } : {}), startNs, attempt: 1, truncated: true });
    }
    this.open.push({ name, kind: 'section', startNs, attempt: 1, index, ...(parent ? { parent } : {}) });
    body();
    this.w.advance(4.25);
    const frame = this.open.pop()!;
    this.close(frame, `${CLEAR}section_end:${this.seconds()}:${name}\r${CLEAR}\n`, 1);
  }

  /** FF_SCRIPT_SECTIONS: the runner's bash wraps a multi-line command (stream 01, bash `printf '%b\n'`). */
  scriptStepSection(i: number, firstLine: string, body: () => void): void {
    if (this.w.capped) return;
    const name = `section_script_step_${i}`;
    this.w.advance(1.5);
    this.beforeMarker();
    const parent = this.open[this.open.length - 1]?.name;
    const startNs = this.markerTime();
    this.w.write(
      1,
      `section_start:${this.seconds()}:${name}[hide_duration=true,collapsed=true]\r${CLEAR}${GREEN}$ ${firstLine} # collapsed multi-line command${RESET}\n`,
    );
    const index = this.sections.length;
    if (!this.w.capped) {
      this.sections.push({ name, kind: 'section', ...(parent ? { parent } : {}), startNs, attempt: 1, truncated: true });
    }
    this.open.push({ name, kind: 'section', startNs, attempt: 1, index, ...(parent ? { parent } : {}) });
    body();
    this.w.advance(0.8);
    const frame = this.open.pop()!;
    this.close(frame, `section_end:${this.seconds()}:${name}\r${CLEAR}\n`, 1);
  }

  private close(frame: Frame, marker: string, stream: number): void {
    this.beforeMarker();
    const endNs = this.markerTime();
    if (this.w.capped) return;
    this.w.write(stream, marker);
    // The end counts only if its marker made it whole into the log.
    if (this.w.capped) return;
    const s = this.sections[frame.index];
    if (s) this.sections[frame.index] = { ...s, endNs, truncated: false };
  }
}

/** Builds one job log for a scenario. */
export function buildJobLog(scenario: JobLogScenario, options: JobLogOptions): BuiltJobLog {
  const startNs = BigInt(options.start.getTime()) * 1_000_000n;
  const limit = options.outputLimitBytes ?? (scenario === 'output-limit' ? 48 * 1024 : DEFAULT_OUTPUT_LIMIT_BYTES);
  const masked = options.masked ?? [SECRET];
  const w = new RunnerLogWriter(startNs, options.timestamps, limit, masked);
  const s = new LogScript(w, options.timestamps, { ...DEFAULT_MS, ...options.durationsMs } as Record<string, number>);
  const failed = scenario === 'script-failure' || scenario === 'concrete-script-failure';
  const concrete = scenario === 'concrete' || scenario === 'concrete-script-failure';
  const flags = scenario === 'script-sections' ? ', FF_SCRIPT_SECTIONS:true' : concrete ? ', FF_CONCRETE:true' : '';

  s.runner(`Running with gitlab-runner 18.8.0 (5f1e2a3b)`);
  s.runner(`  on docker-runner-1 t3_AbCdEfGh, system ID: r_q1w2e3r4t5y6`);
  s.runner(`  feature flags: FF_TIMESTAMPS:${options.timestamps}${flags}`);

  s.stage(
    'prepare_executor',
    'Preparing the "docker" executor',
    () => {
      s.runner(`Using Docker executor with image ${IMAGE} ...`);
      s.runner(`Using effective pull policy of [always] for container ${IMAGE}`);
      s.runner(`Pulling docker image ${IMAGE} ...`);
      s.runner(`Using docker image ${IMAGE_ID} for ${IMAGE} with digest ${IMAGE_DIGEST} ...`);
    },
    { attributes: { 'ci.image.name': IMAGE, 'ci.image.pull_policy': 'always', 'ci.image.digest': IMAGE_DIGEST } },
  );

  if (concrete) {
    concreteJob(s, failed);
    return finished(s, w, failed);
  }

  s.stage('prepare_script', 'Preparing environment', () => {
    s.job('Running on runner-t3abcdef-project-42-concurrent-0 via build-host-7...');
  });

  const getSources = (ok: boolean) => () => {
    s.notice('Fetching changes with git depth set to 20...');
    s.job('Initialized empty Git repository in /builds/acme/shop/.git/');
    s.notice('Created fresh repository.');
    if (!ok) {
      s.job("fatal: unable to access 'https://gitlab.example.com/acme/shop.git/': Could not resolve host: gitlab.example.com", 'E');
      return;
    }
    s.notice('Checking out 1a2b3c4d as detached HEAD (ref is main)...');
    s.job('');
    s.notice('Skipping Git submodules setup');
  };
  const gitAttrs = { 'ci.git.depth': 20, 'ci.git.operation': 'clone' };
  if (scenario === 'get-sources-retry') {
    s.stage('get_sources', 'Getting source from Git repository', getSources(false), { status: 'failed', attributes: gitAttrs });
    s.stage('clear_worktree', 'Deleting all tracked and untracked files due to source fetch failure', () => {
      s.job('Removing .git/');
    });
  }
  s.stage('get_sources', 'Getting source from Git repository', getSources(true), { attributes: gitAttrs });

  s.stage(
    'restore_cache',
    'Restoring cache',
    () => {
      s.notice(`Checking cache for ${CACHE_KEY}...`);
      s.job('No URL provided, cache will not be downloaded from shared cache server. Instead a local version of cache will be extracted.');
      s.notice('Successfully extracted cache');
    },
    { attributes: { 'ci.cache.key': CACHE_KEY, 'ci.cache.hit': true } },
  );

  s.stage('download_artifacts', 'Downloading artifacts', () => {
    s.notice('Downloading artifacts for build (1001)...');
    s.job(
      `Downloading artifacts from coordinator... ok        host=gitlab.example.com id=1001 responseStatus=200 OK token=${TOKEN_PREFIX}`,
    );
  });

  s.stage(
    'step_script',
    'Executing "step_script" stage of the job script',
    () => {
      s.runner(`Using docker image ${IMAGE_ID} for ${IMAGE} with digest ${IMAGE_DIGEST} ...`);
      s.notice('$ bundle config set --local path vendor');
      s.notice(`$ echo "deploying with ${SECRET}"`);
      s.job(`deploying with ${SECRET}`);
      s.job('Résumé: ✓ 42 examples, 0 failures — 測試通過 🚀');
      if (scenario === 'user-sections') {
        s.userSection(
          'build',
          'Building the gem',
          () => {
            s.job('compiling native extensions…');
            s.userSection('compile.native', 'Compiling', () => s.job('gcc -O2 -c ext.c'), '[collapsed=true]');
            s.job('built shop-1.2.3.gem');
          },
          '[collapsed=true]',
        );
        s.userSection('test', 'Tests', () => s.job('42 examples, 0 failures'));
      }
      if (scenario === 'script-sections') {
        s.scriptStepSection(2, 'for f in spec/*_spec.rb; do', () => {
          s.job('spec/a_spec.rb ok');
          s.job('spec/b_spec.rb ok');
        });
      }
      if (scenario === 'progress') {
        // A progress bar rewritten with `\r`: each write is flushed as a `+` entry of one line.
        s.notice('$ ./fetch-fixtures.sh');
        for (const pct of [0, 25, 50, 75]) s.jobWrite(`Fetching fixtures: ${pct}%\r`);
        s.jobWrite('Fetching fixtures: 100%\r\n');
        // A user section printed in two writes, cut after the marker's `\r`.
        s.userSectionInTwoWrites('fixtures', 'Unpacking fixtures', () => s.job('unpacked 12 files'));
        // A line longer than the stamper's 8 KiB buffer: cut into `+` entries.
        s.jobWrite(`${'='.repeat(STAMPER_BUFFER_BYTES + 1808)}`);
        s.jobWrite(' end of a very long line\n');
      }
      if (scenario === 'fake-builtin-marker') {
        // A script that prints the runner's own marker text: a user section on stream 01.
        s.userSection('get_sources', 'not really getting sources', () => s.job('hello'));
      }
      let extra = options.scriptOutputBytes ?? (scenario === 'output-limit' ? 96 * 1024 : 0);
      let n = 0;
      while (extra > 0 && !w.capped) {
        const line = `${String(n++).padStart(8, '0')} ok - spec/models/order_spec.rb:${n % 997} computes totals in € and ¥ ✓ ${'.'.repeat(20)}`;
        s.job(line);
        extra -= line.length + (options.timestamps ? 33 : 1);
      }
      if (failed) {
        s.notice('$ bundle exec rspec');
        s.job('Failures:', 'O');
        s.job('  1) Order computes totals: expected 42, got 41');
      }
    },
    { status: failed ? 'failed' : 'success' },
  );

  s.stage('after_script', 'Running after_script', () => {
    s.notice('Running after script...');
    s.notice('$ echo done');
    s.job('done');
  });

  s.stage(
    failed ? 'archive_cache_on_failure' : 'archive_cache',
    failed ? 'Saving cache for failed job' : 'Saving cache for successful job',
    () => {
      s.notice(`Creating cache ${CACHE_KEY}...`);
      s.job('vendor/: found 1234 matching artifact files and directories');
      s.job('No URL provided, cache will not be uploaded to shared cache server. Cache will be stored only locally.');
      s.notice('Created cache');
    },
    { attributes: { 'ci.cache.key': CACHE_KEY } },
  );

  s.stage(
    failed ? 'upload_artifacts_on_failure' : 'upload_artifacts_on_success',
    failed ? 'Uploading artifacts for failed job' : 'Uploading artifacts for successful job',
    () => {
      s.notice('Uploading artifacts...');
      s.job('pkg/: found 3 matching artifact files and directories');
      s.job(`Uploading artifacts as "archive" to coordinator... 201 Created  id=1002 responseStatus=201 Created token=${TOKEN_PREFIX}`);
    },
    { attributes: { 'ci.artifact.type': ['archive'], 'ci.artifact.count': 1 } },
  );

  s.stage('cleanup_file_variables', 'Cleaning up project directory and file based variables', () => {});

  return finished(s, w, failed);
}

/** The runner's last line and the job's final update. */
function finished(s: LogScript, w: RunnerLogWriter, failed: boolean): BuiltJobLog {
  if (failed) {
    s.runner(`${RED}ERROR: Job failed: exit code 1`);
  } else {
    s.runner(`${GREEN}Job succeeded`);
  }
  w.advance(120);
  return {
    bytes: w.bytes(),
    sections: s.sections,
    outcome: failed ? { status: 'failed', failureReason: 'script_failure', exitCode: 1 } : { status: 'success' },
    endNs: w.now,
    ...(w.firstTimestamp !== undefined ? { firstTimestamp: w.firstTimestamp } : {}),
    ...(w.lastTimestamp !== undefined ? { lastTimestamp: w.lastTimestamp } : {}),
    truncated: w.capped,
    secrets: [TOKEN_PREFIX, SECRET],
  };
}

/**
 * A FF_CONCRETE job after prepare_executor (common/build.go executeConcreteJob,
 * functions/concrete/run/runner.go Run; docs/job-log.md#ci-steps-jobs): one
 * runner stage, `concrete`, and inside it the stages step-runner writes on
 * stream 01. No prepare_script, clear_worktree or cleanup_file_variables
 * section: concrete runs those steps without one.
 */
function concreteJob(s: LogScript, failed: boolean): void {
  s.stage(
    'concrete',
    'Executing "concrete" stage of the job script',
    () => {
      s.stepStage(
        'get_sources',
        () => {
          s.stepNotice('Fetching changes with git depth set to 20...');
          s.stepNotice('Created fresh repository.');
          s.stepNotice('Checking out 1a2b3c4d as detached HEAD (ref is main)...');
          s.stepNotice('Skipping Git submodules setup');
        },
        { attributes: { 'ci.git.depth': 20, 'ci.git.operation': 'clone' } },
      );
      s.stepStage(
        'restore_cache',
        () => {
          s.stepNotice(`Checking cache for ${CACHE_KEY}...`);
          s.stepNotice('Successfully extracted cache');
        },
        { attributes: { 'ci.cache.key': CACHE_KEY, 'ci.cache.hit': true } },
      );
      s.stepStage('download_artifacts', () => s.stepNotice('Downloading artifacts for build (1001)...'));
      s.stepStage(
        'step_script',
        () => {
          s.notice('$ bundle config set --local path vendor');
          s.notice(`$ echo "deploying with ${SECRET}"`);
          s.job(`deploying with ${SECRET}`);
          s.userSection('build', 'Building the gem', () => s.job('built shop-1.2.3.gem'), '[collapsed=true]');
          // A script printing a built-in name inside step_script: still the script's section.
          s.userSection('get_sources', 'not really getting sources', () => s.job('hello'));
          if (failed) {
            s.notice('$ bundle exec rspec');
            s.job('  1) Order computes totals: expected 42, got 41');
          }
        },
        { status: failed ? 'failed' : 'success' },
      );
      s.stepStage('after_script', () => {
        s.notice('$ echo done');
        s.job('done');
      });
      s.stepStage(
        failed ? 'archive_cache_on_failure' : 'archive_cache',
        () => {
          s.stepNotice(`Creating cache ${CACHE_KEY}...`);
          s.stepNotice('Created cache');
        },
        { attributes: { 'ci.cache.key': CACHE_KEY } },
      );
      s.stepStage(
        failed ? 'upload_artifacts_on_failure' : 'upload_artifacts_on_success',
        () => {
          s.stepNotice('Uploading artifacts...');
          s.job(`Uploading artifacts as "archive" to coordinator... 201 Created  id=1002 responseStatus=201 Created token=${TOKEN_PREFIX}`);
        },
        { attributes: { 'ci.artifact.type': ['archive'], 'ci.artifact.count': 1 } },
      );
    },
    { status: failed ? 'failed' : 'success' },
  );
}
