// `gitlab-otel onboard`: file "Add OpenTelemetry instrumentation" issues and
// start Duo developer/v1 workflows for projects or whole groups.
// Exit codes: 0 nothing failed, 1 some project failed or is in conflict, 2 usage
// or configuration error. How it decides: docs/onboarding.md.
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { createGitLabClient, describeError, statusOf, type GitLabClientOptions } from './gitlab-client.js';
import { OnboardingError } from './errors.js';
import { parseUser, type UserWire } from './gitlab-wire.js';
import { onboardProject, type OnboardOptions } from './onboard.js';
import { Reporter } from './report.js';
import { targets, type TargetSpec } from './targets.js';

export const DEFAULT_LABEL = 'opentelemetry-onboarding';
export const DEFAULT_CONCURRENCY = 4;
/** How long one request may wait out rate limits, in all, by default (seconds). */
export const DEFAULT_MAX_WAIT_S = 300;

export const ONBOARD_USAGE = `Usage: gitlab-otel onboard (--project ID|PATH ... | --group ID|PATH [--include-subgroups] [--include-shared])
                          [--dry-run] [--label NAME ...] [--concurrency N]
                          [--requests-per-minute N] [--max-wait SECONDS] [--report FILE]
                          [--keep-issue-on-failure] [--allow-insecure-http]

Files an "Add OpenTelemetry instrumentation" issue in each eligible project and
starts a GitLab Duo developer/v1 workflow for it. Safe to re-run.

  --project ID|PATH        a project (repeatable)
  --group ID|PATH          every project of a group you can push to
  --include-subgroups      with --group: descend into subgroups
  --include-shared         with --group: also projects shared into the group from elsewhere
  --dry-run                make no writes; report what would happen
  --label NAME             label for the issues (repeatable; the first identifies ours;
                           default ${DEFAULT_LABEL})
  --concurrency N          projects in parallel (default ${DEFAULT_CONCURRENCY})
  --requests-per-minute N  client-side cap on API requests
  --max-wait SECONDS       longest one request waits out rate limits, in all (default ${DEFAULT_MAX_WAIT_S})
  --report FILE            also write a JSON report to FILE and a Markdown summary beside it
  --keep-issue-on-failure  leave the issue open when the workflow cannot start

Environment:
  GITLAB_URL     instance URL (inside CI: CI_SERVER_URL or CI_API_V4_URL)
  GITLAB_TOKEN   personal, group, project or service-account token with the api scope
`;

export interface OnboardIo {
  env: Record<string, string | undefined>;
  stdout: Writable;
  stderr: Writable;
  /** For tests: how long to wait before asking for languages a second time. */
  languageRetryDelayMs?: number;
  /** For tests and benchmarks: tune the HTTP policy. */
  client?: Partial<GitLabClientOptions>;
}

interface Config {
  spec: TargetSpec;
  labels: string[];
  dryRun: boolean;
  concurrency: number;
  requestsPerMinute?: number;
  reportFile?: string;
  keepIssueOnFailure: boolean;
  maxWaitSeconds: number;
  /** Set when --allow-insecure-http lifted the refusal of plaintext to a non-loopback host. */
  insecureHost?: string;
  url: string;
  token: string;
}

/** Whether `hostname` (as URL.hostname gives it) is this machine. Pure. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./.test(host) || host === '::ffff:7f00:1';
  return false;
}

function positiveInt(name: string, raw: string | undefined, fallback?: number): number | undefined {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new OnboardingError('USAGE', `--${name} must be a positive integer, got '${raw}'`);
  return Number(raw);
}

/** argv and environment → configuration. Pure; throws OnboardingError (exit 2). */
export function parseOnboardArgs(argv: string[], env: Record<string, string | undefined>): Config | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        project: { type: 'string', multiple: true },
        group: { type: 'string' },
        'include-subgroups': { type: 'boolean', default: false },
        'include-shared': { type: 'boolean', default: false },
        'max-wait': { type: 'string' },
        'allow-insecure-http': { type: 'boolean', default: false },
        'dry-run': { type: 'boolean', default: false },
        label: { type: 'string', multiple: true },
        concurrency: { type: 'string' },
        'requests-per-minute': { type: 'string' },
        report: { type: 'string' },
        'keep-issue-on-failure': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new OnboardingError('USAGE', (err as Error).message);
  }
  if (values.help) return 'help';
  const projects = values.project ?? [];
  if (projects.length > 0 && values.group !== undefined) throw new OnboardingError('USAGE', 'give --project or --group, not both');
  if (projects.length === 0 && values.group === undefined) throw new OnboardingError('USAGE', 'give at least one --project, or a --group');
  if (values['include-subgroups'] && values.group === undefined) throw new OnboardingError('USAGE', '--include-subgroups needs --group');
  if (values['include-shared'] && values.group === undefined) throw new OnboardingError('USAGE', '--include-shared needs --group');
  if ([...projects, values.group ?? 'x'].some((p) => p.trim() === ''))
    throw new OnboardingError('USAGE', 'a project or group reference is empty');
  const labels = (values.label ?? [DEFAULT_LABEL]).map((l) => l.trim());
  if (labels.some((l) => l === '' || l.includes(','))) throw new OnboardingError('USAGE', '--label must be non-empty and contain no comma');

  const rawUrl = env.GITLAB_URL || env.CI_SERVER_URL || env.CI_API_V4_URL;
  if (!rawUrl)
    throw new OnboardingError('CONFIG_MISSING_URL', 'set GITLAB_URL to the GitLab instance URL (inside CI, CI_SERVER_URL is used)');
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new OnboardingError('CONFIG_BAD_URL', `GITLAB_URL is not a URL: '${rawUrl}'`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new OnboardingError('CONFIG_BAD_URL', `GITLAB_URL must be http(s), got '${url.protocol}'`);
  // Checked before any request: every request carries the token.
  const insecure = url.protocol === 'http:' && !isLoopbackHost(url.hostname);
  if (insecure && !values['allow-insecure-http']) {
    throw new OnboardingError(
      'CONFIG_INSECURE_URL',
      `GITLAB_URL is http:// to ${url.hostname}, which is not this machine: the token would travel in clear. ` +
        'Use https://, or pass --allow-insecure-http to send it anyway',
    );
  }
  const token = env.GITLAB_TOKEN;
  if (!token) {
    if (env.CI_JOB_TOKEN) {
      throw new OnboardingError(
        'CONFIG_JOB_TOKEN_ONLY',
        'only CI_JOB_TOKEN is available, and a CI job token cannot create issues or start Duo workflows: ' +
          'set GITLAB_TOKEN (a masked CI/CD variable) to a personal, group, project or service-account token with the api scope',
      );
    }
    throw new OnboardingError('CONFIG_MISSING_TOKEN', 'set GITLAB_TOKEN to a token with the api scope');
  }
  const config: Config = {
    spec:
      values.group !== undefined
        ? { kind: 'group', ref: values.group, includeSubgroups: values['include-subgroups'], includeShared: values['include-shared'] }
        : { kind: 'projects', refs: projects },
    labels,
    dryRun: values['dry-run'],
    concurrency: positiveInt('concurrency', values.concurrency, DEFAULT_CONCURRENCY)!,
    keepIssueOnFailure: values['keep-issue-on-failure'],
    maxWaitSeconds: positiveInt('max-wait', values['max-wait'], DEFAULT_MAX_WAIT_S)!,
    ...(insecure ? { insecureHost: url.hostname } : {}),
    url: url
      .toString()
      .replace(/\/+$/, '')
      .replace(/\/api\/v4$/, ''),
    token,
  };
  const rpm = positiveInt('requests-per-minute', values['requests-per-minute']);
  if (rpm !== undefined) config.requestsPerMinute = rpm;
  if (values.report !== undefined) config.reportFile = values.report;
  return config;
}

export async function runOnboard(argv: string[], io: OnboardIo): Promise<number> {
  let config: Config | 'help';
  try {
    config = parseOnboardArgs(argv, io.env);
  } catch (err) {
    io.stderr.write(`gitlab-otel onboard: ${(err as Error).message}\n\n${ONBOARD_USAGE}`);
    return 2;
  }
  if (config === 'help') {
    io.stdout.write(ONBOARD_USAGE);
    return 0;
  }

  if (config.insecureHost) {
    io.stderr.write(
      `gitlab-otel onboard: warning: sending GITLAB_TOKEN in clear over http to ${config.insecureHost} (--allow-insecure-http)\n`,
    );
  }

  const client = createGitLabClient({
    url: config.url,
    token: config.token,
    maxWaitMs: config.maxWaitSeconds * 1000,
    ...(config.requestsPerMinute ? { requestsPerMinute: config.requestsPerMinute } : {}),
    ...io.client,
  });

  let user: UserWire;
  try {
    user = parseUser(await client.api.Users.showCurrentUser());
  } catch (err) {
    const status = statusOf(err);
    const message =
      status === 401
        ? 'GitLab rejected GITLAB_TOKEN (401 Unauthorized): check that it exists, has not expired and has the api scope'
        : `cannot reach GitLab at ${config.url}: ${describeError(err).message}`;
    io.stderr.write(`gitlab-otel onboard: ${message}\n`);
    return 2;
  }

  let reporter: Reporter;
  try {
    reporter = new Reporter({
      stdout: io.stdout,
      stderr: io.stderr,
      ...(config.reportFile ? { reportFile: config.reportFile } : {}),
      dryRun: config.dryRun,
    });
  } catch (err) {
    io.stderr.write(`gitlab-otel onboard: ${(err as Error).message}\n`);
    return 2;
  }

  const options: OnboardOptions = {
    client,
    userId: user.id,
    userIsAdmin: user.is_admin,
    graphqlCompat: { dropped: new Set() },
    labels: config.labels,
    dryRun: config.dryRun,
    keepIssueOnFailure: config.keepIssueOnFailure,
    ...(io.languageRetryDelayMs !== undefined ? { languageRetryDelayMs: io.languageRetryDelayMs } : {}),
  };
  const queue = targets(client.api, config.spec, { userIsAdmin: user.is_admin });
  let runError: { code: string; message: string } | undefined;
  // Workers pull from one async generator: a group page is fetched only when the previous one is used up.
  const worker = async (): Promise<void> => {
    for (;;) {
      const next = await queue.next();
      if (next.done) return;
      await reporter.record(await onboardProject(options, next.value));
    }
  };
  try {
    await Promise.all(Array.from({ length: config.concurrency }, worker));
  } catch (err) {
    runError = describeError(err);
  }
  const summary = await reporter.finish(runError);
  if (runError) return runError.code === 'NOT_FOUND' ? 2 : 1;
  return summary.failed > 0 || summary.conflict > 0 ? 1 : 0;
}

export async function onboardCommand(argv: string[]): Promise<number> {
  return runOnboard(argv, { env: process.env, stdout: process.stdout, stderr: process.stderr });
}
