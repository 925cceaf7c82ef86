// Project fixtures for the onboarding tests, and a way to run the real
// `onboard` command (real Gitbeaker, real HTTP) against the GitLab simulator.
import { PassThrough } from 'node:stream';
import { runOnboard } from '../../src/onboarding/command.js';
import type { GitLabClientOptions } from '../../src/onboarding/gitlab-client.js';
import { ISSUE_TITLE, renderDescription } from '../../src/onboarding/languages/choose.js';
import type { ProjectResult } from '../../src/onboarding/onboard.js';
import { GitLabRestSimulator, type GitLabRestSimulatorOptions, type SimIssue, type SimProject } from './gitlab-rest.js';

export const TOKEN = 'glpat-good';

/** An eligible JavaScript project unless overridden. */
export function eligible(id: number, over: Partial<SimProject> = {}): SimProject {
  return {
    id,
    path_with_namespace: `acme/p${id}`,
    group_id: 1,
    default_branch: 'main',
    duo_remote_flows_enabled: true,
    duo_foundational_flows_enabled: true,
    project_access_level: 30,
    group_access_level: null,
    languages: { JavaScript: 80.5, Shell: 19.5 },
    files: { 'package.json': JSON.stringify({ name: `p${id}`, dependencies: { express: '^4' } }) },
    ...over,
  };
}

export interface Run {
  code: number;
  results: ProjectResult[];
  stdout: string;
  stderr: string;
}

function collect(stream: PassThrough): () => string {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return () => Buffer.concat(chunks).toString('utf8');
}

/**
 * Puts an issue into the simulator as if someone had filed it: by default
 * exactly the issue gitlab-otel writes for eligible(id), by the token's user.
 */
export function plantIssue(sim: GitLabRestSimulator, projectId: number, over: Partial<SimIssue> = {}): SimIssue {
  const project = sim.projects.get(projectId)!;
  const list = sim.issuesOf(projectId);
  const iid = list.reduce((max, i) => Math.max(max, i.iid), 0) + 1;
  const issue: SimIssue = {
    id: 50_000 + projectId * 100 + iid,
    iid,
    project_id: projectId,
    title: ISSUE_TITLE,
    description: renderDescription('javascript', { language: 'JavaScript', projectPath: project.path_with_namespace }),
    state: 'opened',
    labels: ['opentelemetry-onboarding'],
    web_url: `${sim.url}/${project.path_with_namespace}/-/work_items/${iid}`,
    author: { id: 1, username: 'otel-bot' },
    notes: [],
    ...over,
  };
  list.push(issue);
  return issue;
}

/** Runs `gitlab-otel onboard <argv>` in-process against `url`; bounded by a timeout. */
export async function onboard(
  url: string,
  argv: string[],
  env: Record<string, string | undefined> = {},
  client: Partial<GitLabClientOptions> = {},
): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out = collect(stdout);
  const err = collect(stderr);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('onboard run did not finish within 60 s')), 60_000);
  });
  const code = await Promise.race([
    runOnboard(argv, {
      env: { GITLAB_URL: url, GITLAB_TOKEN: TOKEN, ...env },
      stdout,
      stderr,
      languageRetryDelayMs: 20,
      client: { minBackoffMs: 10, timeoutMs: 5000, ...client },
    }),
    timeout,
  ]).finally(() => clearTimeout(timer));
  const text = out();
  const results = text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ProjectResult);
  return { code, results, stdout: text, stderr: err() };
}

export async function simulator(options: GitLabRestSimulatorOptions): Promise<GitLabRestSimulator> {
  const sim = new GitLabRestSimulator({ groups: [{ id: 1, full_path: 'acme' }], logRequests: true, ...options });
  await sim.start();
  return sim;
}
