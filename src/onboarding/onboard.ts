// One project, in GitLab's own order (facts: gitlab-api.md §2.2): eligibility,
// already instrumented, our open issue (idempotency), the issue, the
// developer/v1 workflow, compensation. Never throws: every outcome is a
// ProjectResult. Writes are never repeated blindly: when a POST's outcome is
// unknown we look for its effect (our marker issue, the session note) first.
import { GitbeakerRequestError } from '@gitbeaker/rest';
import { describeError, statusOf, type GitLabClient } from './gitlab-client.js';
import { checkAccess, checkLanguages, checkProject, accessFromPermissions } from './eligibility.js';
import { OnboardingError, UncertainWriteError } from './errors.js';
import {
  parseIssue,
  parseIssues,
  parseLanguages,
  parseNotes,
  parseProject,
  parseWorkflow,
  type IssueWire,
  type LanguagesWire,
  type ProjectWire,
} from './gitlab-wire.js';
import { dependsOnOpenTelemetry, MANIFESTS } from './instrumented.js';
import { ISSUE_MARKER, ISSUE_TITLE, primaryLanguage, renderDescription, templateFor, type TemplateId } from './languages/choose.js';

export type ResultStatus = 'created' | 'skipped' | 'failed';

/** One JSON line per project; the shape of GitLab's own duo_otel_workflows answer, plus why. */
export interface ProjectResult {
  project: string;
  status: ResultStatus;
  project_id?: number;
  issue?: { iid: number; web_url: string };
  workflow?: { id: number };
  workload_id?: string | number | null;
  reason?: string;
  /** Stable code for skipped/failed results. */
  code?: string;
  /** For failures from GitLab: 'forbidden' (403) or 'unprocessable' (anything else), as GitLab's endpoint splits them. */
  error?: 'forbidden' | 'unprocessable';
  language?: string | null;
  template?: TemplateId;
  dry_run?: true;
}

export interface OnboardOptions {
  client: GitLabClient;
  /** The token's user (GET /user), for the members check. */
  userId: number;
  /** The first label identifies our issues; all are applied. */
  labels: string[];
  dryRun?: boolean;
  keepIssueOnFailure?: boolean;
  /** Wait before asking for languages a second time when the first answer is {}. Default 3 s. */
  languageRetryDelayMs?: number;
}

export const DEVELOPER_FLOW = 'developer/v1';
/** READ_WRITE_FILES, READ_ONLY_GITLAB, READ_WRITE_GITLAB, USE_GIT (facts §2.1). */
export const AGENT_PRIVILEGES = [1, 2, 3, 5] as const;

// "started session [123](<project>/-/automate/agent-sessions/123) ..." (SystemNotes::AgentsService).
const SESSION_NOTE = /^started session \[(\d+)\]\([^)]*\/-\/automate\/agent-sessions\/\1\)/;

/** The workflow id of the session GitLab noted as started on the issue, if any. Pure. */
export function startedSession(notes: { body: string; system: boolean }[]): number | null {
  for (const n of notes) {
    const m = n.system ? SESSION_NOTE.exec(n.body) : null;
    if (m) return Number(m[1]);
  }
  return null;
}

/** Whether an issue is ours: our label and our hidden marker. Pure. */
export function isOurIssue(issue: IssueWire, label: string): boolean {
  return issue.labels.includes(label) && issue.description.includes(ISSUE_MARKER);
}

/** The goal the workflow receives: the issue URL (as GitLab's own button sends) and a one-line summary. */
export function workflowGoal(issueUrl: string, language: string | null): string {
  return `${issueUrl}\nAdd OpenTelemetry instrumentation${language ? ` for ${language}` : ''} as the issue describes, in a merge request.`;
}

function errorKind(err: unknown): 'forbidden' | 'unprocessable' {
  return statusOf(err) === 403 ? 'forbidden' : 'unprocessable';
}

function is404(err: unknown): boolean {
  return err instanceof GitbeakerRequestError && statusOf(err) === 404;
}

export async function onboardProject(opts: OnboardOptions, ref: string | number): Promise<ProjectResult> {
  const label = opts.labels[0]!;
  const api = opts.client.api;
  const result: ProjectResult = { project: String(ref), status: 'failed' };
  try {
    // 1. Eligibility.
    let project: ProjectWire;
    try {
      project = parseProject(await api.Projects.show(ref));
    } catch (err) {
      if (is404(err)) throw new OnboardingError('NOT_FOUND', `project '${ref}' not found, or not visible to this token`, 404);
      throw err;
    }
    result.project = project.path_with_namespace;
    result.project_id = project.id;
    const skip = (code: string, reason: string): ProjectResult => Object.assign(result, { status: 'skipped' as const, code, reason });

    const projectIssue = checkProject(project);
    if (projectIssue) return skip(projectIssue.code, projectIssue.reason);

    let level = accessFromPermissions(project);
    if (level === null) level = await memberAccess(opts, project.id);
    const accessIssue = checkAccess(level);
    if (accessIssue) return skip(accessIssue.code, accessIssue.reason);

    const languages = await fetchLanguages(opts, project.id);
    const languageIssue = checkLanguages(languages);
    if (languageIssue) return skip(languageIssue.code, languageIssue.reason);
    const language = primaryLanguage(languages);
    const template = templateFor(language);
    result.language = language;
    result.template = template;

    // 2. Already instrumented.
    const manifest = await instrumentedManifest(opts, project, template);
    if (manifest) return skip('ALREADY_INSTRUMENTED', `already instrumented (${manifest} depends on OpenTelemetry)`);

    // 3. Idempotency: our open issue, and whether a workflow was started for it.
    let issue = await findOurIssue(opts, project.id, label);
    if (issue) {
      result.issue = { iid: issue.iid, web_url: issue.web_url };
      const session = startedSession(parseNotes(await api.IssueNotes.all(project.id, issue.iid, { perPage: 100 })));
      if (session !== null) {
        result.workflow = { id: session };
        return skip('ALREADY_STARTED', `issue #${issue.iid} already has workflow ${session}`);
      }
      if (opts.dryRun) {
        return Object.assign(skip('DRY_RUN', `dry run: would start the ${DEVELOPER_FLOW} workflow for issue #${issue.iid}`), {
          dry_run: true as const,
        });
      }
    } else {
      if (opts.dryRun) {
        return Object.assign(
          skip('DRY_RUN', `dry run: would create the issue (${template} template) and start the ${DEVELOPER_FLOW} workflow`),
          {
            dry_run: true as const,
          },
        );
      }
      // 4. The issue.
      issue = await createIssue(opts, project, renderDescription(template, { language, projectPath: project.path_with_namespace }));
      result.issue = { iid: issue.iid, web_url: issue.web_url };
    }

    // 5. The workflow.
    try {
      const started = await startWorkflow(opts, project, issue, language);
      result.workflow = { id: started.id };
      result.workload_id = started.workloadId;
      result.status = 'created';
      if (started.note) result.reason = started.note;
      return result;
    } catch (err) {
      const d = describeError(err);
      Object.assign(result, { status: 'failed', code: d.code, reason: `workflow not started: ${d.message}`, error: errorKind(err) });
      if (!opts.keepIssueOnFailure) await compensate(opts, project.id, issue.iid, d.message, result);
      return result;
    }
  } catch (err) {
    const d = describeError(err);
    return Object.assign(result, { status: 'failed' as const, code: d.code, reason: d.message, error: errorKind(err) });
  }
}

async function memberAccess(opts: OnboardOptions, projectId: number): Promise<number | null> {
  try {
    // members/all includes inherited and invited-group memberships, which `permissions` does not reflect.
    const member = (await opts.client.api.ProjectMembers.show(projectId, opts.userId, { includeInherited: true })) as unknown;
    const level = (member as { access_level?: unknown }).access_level;
    if (typeof level !== 'number') throw new OnboardingError('MALFORMED_RESPONSE', 'GitLab returned a malformed member: no access_level');
    return level;
  } catch (err) {
    if (is404(err)) return null;
    throw err;
  }
}

async function fetchLanguages(opts: OnboardOptions, projectId: number): Promise<LanguagesWire> {
  const first = parseLanguages(await opts.client.api.Projects.showLanguages(projectId));
  if (Object.keys(first).length > 0) return first;
  // {} can mean detection was only just queued by this very call: look once more.
  await new Promise((resolve) => setTimeout(resolve, opts.languageRetryDelayMs ?? 3000));
  return parseLanguages(await opts.client.api.Projects.showLanguages(projectId));
}

async function instrumentedManifest(opts: OnboardOptions, project: ProjectWire, template: TemplateId): Promise<string | null> {
  const ref = project.default_branch ?? 'HEAD';
  const paths: string[] = [];
  for (const m of MANIFESTS[template]) {
    if (!m.startsWith('*')) {
      paths.push(m);
      continue;
    }
    const tree = (await opts.client.api.Repositories.allRepositoryTrees(project.id, { ref, perPage: 100, maxPages: 1 })) as unknown;
    if (Array.isArray(tree)) {
      for (const e of tree as { type?: unknown; path?: unknown }[]) {
        if (e.type === 'blob' && typeof e.path === 'string' && e.path.endsWith(m.slice(1))) paths.push(e.path);
      }
    }
  }
  for (const path of paths.slice(0, 5)) {
    let content: unknown;
    try {
      content = await opts.client.api.RepositoryFiles.showRaw(project.id, path, ref);
    } catch (err) {
      if (is404(err)) continue;
      throw err;
    }
    if (typeof content === 'string' && dependsOnOpenTelemetry(path, content)) return path;
  }
  return null;
}

async function findOurIssue(opts: OnboardOptions, projectId: number, label: string): Promise<IssueWire | null> {
  const issues = parseIssues(
    await opts.client.api.Issues.all({
      projectId,
      labels: label,
      state: 'opened',
      orderBy: 'created_at',
      sort: 'asc',
      perPage: 100,
      maxPages: 5,
    }),
  );
  return issues.filter((i) => isOurIssue(i, label)).sort((a, b) => a.iid - b.iid)[0] ?? null;
}

async function createIssue(opts: OnboardOptions, project: ProjectWire, description: string): Promise<IssueWire> {
  const create = async (): Promise<IssueWire> =>
    parseIssue(await opts.client.api.Issues.create(project.id, ISSUE_TITLE, { description, labels: opts.labels.join(',') }));
  try {
    return await create();
  } catch (err) {
    if (!(err instanceof UncertainWriteError)) throw err;
    // The POST may have created the issue: look before sending it again.
    const found = await findOurIssue(opts, project.id, opts.labels[0]!);
    if (found) return found;
    return create();
  }
}

interface Started {
  id: number;
  workloadId: string | number | null;
  note?: string;
}

async function startWorkflow(opts: OnboardOptions, project: ProjectWire, issue: IssueWire, language: string | null): Promise<Started> {
  const body = {
    project_id: String(project.id),
    goal: workflowGoal(issue.web_url, language),
    workflow_definition: DEVELOPER_FLOW,
    start_workflow: true,
    agent_privileges: [...AGENT_PRIVILEGES],
    pre_approved_agent_privileges: [...AGENT_PRIVILEGES],
    environment: 'web',
    ...(project.default_branch ? { source_branch: project.default_branch } : {}),
    issue_id: issue.iid,
  };
  const post = async (): Promise<Started> => {
    // Gitbeaker 43.8 has no resource for Duo workflows: its requester reaches any endpoint.
    const response = await opts.client.api.requester.post('ai/duo_workflows/workflows', { body });
    const workflow = parseWorkflow(response.body);
    const workloadId = workflow.workload?.id ?? null;
    if (workloadId === null || workloadId === '') {
      // A 2xx whose workload has a message and no id did not start (as GitLab's web UI treats it).
      const why = workflow.workload?.message ?? 'GitLab returned no workload id';
      throw new OnboardingError('REQUEST_FAILED', `workflow ${workflow.id} created but not started: ${why}`, response.status);
    }
    return { id: workflow.id, workloadId };
  };
  try {
    return await post();
  } catch (err) {
    if (!(err instanceof UncertainWriteError)) throw err;
    // GitLab notes "started session" on the issue when it creates a linked workflow: look before sending again.
    const session = startedSession(parseNotes(await opts.client.api.IssueNotes.all(project.id, issue.iid, { perPage: 100 })));
    if (session !== null)
      return { id: session, workloadId: null, note: `workflow response lost (${err.message}); found session ${session} on the issue` };
    return post();
  }
}

// GitLab's own compensation: say why on the issue, then close it.
async function compensate(opts: OnboardOptions, projectId: number, iid: number, why: string, result: ProjectResult): Promise<void> {
  const api = opts.client.api;
  try {
    await api.IssueNotes.create(
      projectId,
      iid,
      `gitlab-otel could not start the ${DEVELOPER_FLOW} workflow for this issue, so it is being closed:\n\n> ${why}`,
    );
  } catch {
    // The comment is a courtesy; closing is what keeps the next run correct.
  }
  try {
    await api.Issues.edit(projectId, iid, { stateEvent: 'close' });
    result.reason = `${result.reason}; issue #${iid} closed`;
  } catch (err) {
    result.reason = `${result.reason}; closing issue #${iid} also failed: ${describeError(err).message}`;
  }
}
