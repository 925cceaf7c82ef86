// One project, in GitLab's own order (docs/onboarding.md#how-the-cli-decides):
// the REST checks, access, GitLab's Duo pre-checks (GraphQL), languages,
// already instrumented, our own issue (idempotency), the issue, the
// developer/v1 workflow, confirmation that it started, compensation. Never
// throws: every outcome is a ProjectResult. Writes are never repeated blindly:
// when a POST's outcome is unknown we look for its effect (our issue, the
// session note, the workflow's status) first. Only issues this token's user
// wrote, with exactly our text, are trusted (docs/onboarding.md#whose-issue).
import { GitbeakerRequestError } from '@gitbeaker/rest';
import { describeError, statusOf, type GitLabClient } from './gitlab-client.js';
import {
  accessFromPermissions,
  checkAccess,
  checkDuoStatus,
  checkLanguages,
  checkProject,
  DEVELOPER_ACCESS,
  DEVELOPER_FLOW_REFERENCE,
} from './eligibility.js';
import { OnboardingError, UncertainWriteError } from './errors.js';
import {
  parseDuoStatus,
  parseIssue,
  parseIssues,
  parseLanguages,
  parseNotes,
  parseProject,
  parseWorkflow,
  parseWorkflowStatus,
  type DuoStatusWire,
  type IssueWire,
  type LanguagesWire,
  type NoteWire,
  type ProjectWire,
} from './gitlab-wire.js';
import { dependsOnOpenTelemetry, MANIFESTS } from './instrumented.js';
import {
  ISSUE_MARKER,
  ISSUE_TITLE,
  isOurDescription,
  primaryLanguage,
  renderDescription,
  templateFor,
  type DescriptionContext,
  type TemplateId,
} from './languages/choose.js';

export type ResultStatus = 'created' | 'skipped' | 'failed' | 'conflict';

/** One JSON line per project; the shape of GitLab's own duo_otel_workflows answer, plus why. */
export interface ProjectResult {
  project: string;
  status: ResultStatus;
  project_id?: number;
  issue?: { iid: number; web_url: string };
  workflow?: { id: number };
  workload_id?: string | number | null;
  reason?: string;
  /** Stable code for skipped/failed/conflict results. */
  code?: string;
  /** For failures from GitLab: 'forbidden' (403) or 'unprocessable' (anything else), as GitLab's endpoint splits them. */
  error?: 'forbidden' | 'unprocessable';
  language?: string | null;
  template?: TemplateId;
  dry_run?: true;
}

export interface OnboardOptions {
  client: GitLabClient;
  /** The token's user (GET /user): the author of our issues, and the member we ask about. */
  userId: number;
  /** An administrator can push to every project without being a member (docs/onboarding.md#scope). */
  userIsAdmin?: boolean;
  /** The first label identifies our issues; all are applied. */
  labels: string[];
  dryRun?: boolean;
  keepIssueOnFailure?: boolean;
  /** Wait before asking for languages a second time when the first answer is {}. Default 3 s. */
  languageRetryDelayMs?: number;
  /** Shared by the run: the newer GraphQL fields this instance turned out not to know. */
  graphqlCompat?: { dropped: Set<string> };
}

export const DEVELOPER_FLOW = 'developer/v1';
/** READ_WRITE_FILES, READ_ONLY_GITLAB, READ_WRITE_GITLAB, USE_GIT: the developer/v1 flow's own pre-approved set. */
export const AGENT_PRIVILEGES = [1, 2, 3, 5] as const;

/** The first line of our compensation comment; how a later run knows we closed the issue. */
export const COMPENSATION_PREFIX = `gitlab-otel could not start the ${DEVELOPER_FLOW} workflow for this issue, so it is being closed`;

// "started session [123](<project>/-/automate/agent-sessions/123) ..." (SystemNotes::AgentsService).
const SESSION_NOTE = /^started session \[(\d+)\]\([^)]*\/-\/automate\/agent-sessions\/\1\)/;

/** Workflow ids of the sessions GitLab noted as started on the issue, newest first. Pure. */
export function startedSessions(notes: { body: string; system: boolean }[]): number[] {
  const ids: number[] = [];
  for (const n of notes) {
    const m = n.system ? SESSION_NOTE.exec(n.body) : null;
    if (m) ids.push(Number(m[1]));
  }
  return [...new Set(ids)].sort((a, b) => b - a);
}

/** The newest session GitLab noted as started on the issue, if any. Pure. */
export function startedSession(notes: { body: string; system: boolean }[]): number | null {
  return startedSessions(notes)[0] ?? null;
}

/** Whether an issue carries our label and our hidden marker: a candidate, not yet trusted. Pure. */
export function isOurIssue(issue: IssueWire, label: string): boolean {
  return issue.labels.includes(label) && issue.description.includes(ISSUE_MARKER.replace(/ v\d+ -->$/, ''));
}

/**
 * Whether a candidate can be trusted: written by the token's user, with
 * exactly the text we would write (apart from the template version). Anyone
 * who can set labels could otherwise plant instructions for an agent that
 * runs with read-write privileges. Pure.
 */
export function isTrustedIssue(issue: IssueWire, userId: number, template: TemplateId, ctx: DescriptionContext): boolean {
  return issue.author_id === userId && isOurDescription(issue.description, template, ctx);
}

/** Whether our compensation closed this issue: our own comment saying so. Pure. */
export function closedByCompensation(notes: NoteWire[], userId: number): boolean {
  return notes.some((n) => !n.system && n.author_id === userId && n.body.startsWith(COMPENSATION_PREFIX));
}

/** The goal the workflow receives: the issue URL, and only that, as GitLab's own OpenTelemetry service sends it. */
export function workflowGoal(issueUrl: string): string {
  return issueUrl;
}

/**
 * Our compensation comment. GitLab's message is quoted line by line, so no
 * line of it can start with `/` and run as a quick action. Pure.
 */
export function compensationNote(why: string): string {
  const quoted = why
    .split(/\r?\n/)
    .map((line) => `> ${line}`)
    .join('\n');
  return `${COMPENSATION_PREFIX}:\n\n${quoted}`;
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
    // 1. Eligibility: the REST project.
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
    const dryRun = (reason: string): ProjectResult => Object.assign(skip('DRY_RUN', `dry run: ${reason}`), { dry_run: true as const });

    const projectIssue = checkProject(project);
    if (projectIssue) return skip(projectIssue.code, projectIssue.reason);

    // 2. Push access: administrators can push without a membership; `permissions` misses invited groups.
    if (!opts.userIsAdmin) {
      let level = accessFromPermissions(project);
      if (level === null || level < DEVELOPER_ACCESS) level = Math.max(level ?? 0, (await memberAccess(opts, project.id)) ?? 0) || null;
      const accessIssue = checkAccess(level);
      if (accessIssue) return skip(accessIssue.code, accessIssue.reason);
    }

    // 3. GitLab's own pre-checks, which the REST project does not show.
    const duoIssue = checkDuoStatus(await duoStatus(opts, project));
    if (duoIssue) return skip(duoIssue.code, duoIssue.reason);

    const languages = await fetchLanguages(opts, project.id);
    const languageIssue = checkLanguages(languages);
    if (languageIssue) return skip(languageIssue.code, languageIssue.reason);
    const language = primaryLanguage(languages);
    const template = templateFor(language);
    result.language = language;
    result.template = template;
    const ctx: DescriptionContext = { language, projectPath: project.path_with_namespace };

    // 4. Already instrumented.
    const manifest = await instrumentedManifest(opts, project, template);
    if (manifest) return skip('ALREADY_INSTRUMENTED', `already instrumented (${manifest} depends on OpenTelemetry)`);

    // 5. Idempotency: our issue (open, or closed by our compensation), and whether GitLab started a workflow for it.
    const found = await findOurIssue(opts, project.id, label, template, ctx);
    let issue: IssueWire;
    if (found.kind === 'conflict') {
      const i = found.issue;
      return Object.assign(result, {
        status: 'conflict' as const,
        code: 'UNTRUSTED_ISSUE',
        issue: { iid: i.iid, web_url: i.web_url },
        reason:
          `issue #${i.iid} carries the '${label}' label and the gitlab-otel marker, but ` +
          `${i.author_id === opts.userId ? 'its description is not what gitlab-otel writes' : "it was not written by this token's user"}: ` +
          'nothing started; close or relabel it, or onboard this project by hand',
      });
    }
    if (found.kind === 'ours') {
      issue = found.issue;
      result.issue = { iid: issue.iid, web_url: issue.web_url };
      const notes = parseNotes(await api.IssueNotes.all(project.id, issue.iid, { perPage: 100, maxPages: 5 }));
      const started = await confirmedSession(opts, startedSessions(notes));
      if (started !== null) {
        result.workflow = { id: started };
        return skip('ALREADY_STARTED', `issue #${issue.iid} already has workflow ${started}`);
      }
      if (issue.state !== 'opened') {
        if (!closedByCompensation(notes, opts.userId)) {
          return skip(
            'ISSUE_CLOSED',
            `issue #${issue.iid} was closed, and not by gitlab-otel's compensation: reopen it to onboard this project again`,
          );
        }
        if (opts.dryRun) return dryRun(`would reopen issue #${issue.iid} and start the ${DEVELOPER_FLOW} workflow`);
        issue = parseIssue(await api.Issues.edit(project.id, issue.iid, { stateEvent: 'reopen' }));
      } else if (opts.dryRun) {
        return dryRun(`would start the ${DEVELOPER_FLOW} workflow for issue #${issue.iid}`);
      }
    } else {
      if (opts.dryRun) return dryRun(`would create the issue (${template} template) and start the ${DEVELOPER_FLOW} workflow`);
      // 6. The issue.
      issue = await createIssue(opts, project, renderDescription(template, ctx), template, ctx);
      result.issue = { iid: issue.iid, web_url: issue.web_url };
    }

    // 7. The workflow, counted as started only when GitLab confirms it.
    try {
      const started = await startWorkflow(opts, project, issue);
      result.workflow = { id: started.id };
      result.workload_id = started.workloadId;
      result.status = 'created';
      if (started.note) result.reason = started.note;
      return result;
    } catch (err) {
      const d = describeError(err);
      const workflowId = err instanceof NotStarted ? err.workflowId : undefined;
      Object.assign(result, {
        status: 'failed',
        code: d.code,
        reason: `workflow not started: ${d.message}`,
        error: errorKind(err),
        ...(workflowId !== undefined ? { workflow: { id: workflowId } } : {}),
      });
      if (!opts.keepIssueOnFailure)
        await compensate(opts, project.id, issue.iid, err instanceof NotStarted ? err.gitlabMessage : d.message, result);
      return result;
    }
  } catch (err) {
    const d = describeError(err);
    return Object.assign(result, { status: 'failed' as const, code: d.code, reason: d.message, error: errorKind(err) });
  }
}

// Fields added to GitLab after 18.7, which an older instance rejects the whole query for ("Field 'x' doesn't exist on
// type 'y'", "… doesn't accept argument …", "ProjectID isn't a defined input type"): each is left out once its name
// shows in such an error, and its check is then not made.
const NEWER_FIELDS = ['createDuoWorkflowForCiAllowed', 'foundationalFlowsEnabled', 'enabledFoundationalFlows', 'aiCatalogConfiguredItems'];

/**
 * GitLab's pre-checks in one GraphQL request: Types::Ai::DuoWorkflows::EnablementType, Project.duoFeaturesEnabled,
 * and the project's developer/v1 consumer with its service account as GitLab's OpenTelemetry service resolves them
 * (ItemConsumersFinder by project, FLOW, reference), without the fields in `dropped`. Pure.
 */
export function duoStatusQuery(dropped: ReadonlySet<string>): { query: string; needsProjectId: boolean } {
  const keep = (f: string): boolean => !dropped.has(f);
  const statusFields = [
    'enabled',
    'createDuoWorkflowForCiAllowed',
    'remoteFlowsEnabled',
    'foundationalFlowsEnabled',
    'enabledFoundationalFlows',
  ]
    .filter(keep)
    .map((f) => `      ${f}\n`)
    .join('');
  const consumers = keep('aiCatalogConfiguredItems');
  const query =
    `query gitlabOtelDuoStatus($fullPath: ID!${consumers ? ', $projectId: ProjectID!' : ''}) {\n` +
    `  project(fullPath: $fullPath) {\n    duoFeaturesEnabled\n    duoWorkflowStatusCheck {\n${statusFields}` +
    `      checks { name value message }\n    }\n  }\n` +
    (consumers
      ? `  aiCatalogConfiguredItems(projectId: $projectId, itemTypes: [FLOW], foundationalFlowReference: "${DEVELOPER_FLOW_REFERENCE}") {\n` +
        `    nodes { id project { id } serviceAccount { id } parentItemConsumer { serviceAccount { id } } }\n  }\n`
      : '') +
    `}`;
  return { query, needsProjectId: consumers };
}

/** The newer fields an error from an older GitLab names; empty when it names none of them. Pure. */
export function unknownNewerFields(message: string): string[] {
  const named = NEWER_FIELDS.filter((f) => message.includes(`'${f}'`));
  if (named.length === 0 && /\bProjectID\b/.test(message)) return ['aiCatalogConfiguredItems'];
  return named;
}

async function duoStatus(opts: OnboardOptions, project: ProjectWire): Promise<DuoStatusWire | null> {
  const compat = (opts.graphqlCompat ??= { dropped: new Set() });
  for (;;) {
    // Concurrent projects share `dropped`: judge an error against the query it answered.
    const sent = new Set(compat.dropped);
    const { query, needsProjectId } = duoStatusQuery(sent);
    const variables = {
      fullPath: project.path_with_namespace,
      ...(needsProjectId ? { projectId: `gid://gitlab/Project/${project.id}` } : {}),
    };
    try {
      return parseDuoStatus(await opts.client.graphql(query, variables));
    } catch (err) {
      const unknown = err instanceof OnboardingError && err.code === 'GRAPHQL_ERROR' ? unknownNewerFields(err.message) : [];
      const fresh = unknown.filter((f) => !sent.has(f));
      if (fresh.length === 0) throw err;
      for (const f of fresh) compat.dropped.add(f);
    }
  }
}

/**
 * The newest of `sessions` whose workflow GitLab shows as started (any status
 * past `created`), or null. A workflow still `created` was never started
 * (StartWorkflowService failed after CreateWorkflowService noted it).
 */
async function confirmedSession(opts: OnboardOptions, sessions: number[]): Promise<number | null> {
  for (const id of sessions.slice(0, 5)) {
    const status = await workflowStatus(opts, id);
    if (status !== 'created') return id;
  }
  return null;
}

async function workflowStatus(opts: OnboardOptions, id: number): Promise<string> {
  try {
    const response = await opts.client.api.requester.get(`ai/duo_workflows/workflows/${id}`);
    return parseWorkflowStatus(response.body).status;
  } catch (err) {
    if (is404(err) || statusOf(err) === 403) {
      // Workflows are visible to the user who created them only: someone else's session cannot be confirmed.
      throw new OnboardingError(
        'WORKFLOW_STATUS_UNKNOWN',
        `workflow ${id} noted on the issue is not visible to this token's user`,
        statusOf(err),
      );
    }
    throw err;
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

type FoundIssue = { kind: 'none' } | { kind: 'ours'; issue: IssueWire } | { kind: 'conflict'; issue: IssueWire };

/**
 * Our issue for the project: among issues with our label and marker, the
 * trusted ones (isTrustedIssue), open before closed, oldest first. An open
 * candidate we cannot trust, with no trusted one beside it, is a conflict.
 */
async function findOurIssue(
  opts: OnboardOptions,
  projectId: number,
  label: string,
  template: TemplateId,
  ctx: DescriptionContext,
): Promise<FoundIssue> {
  const issues = parseIssues(
    await opts.client.api.Issues.all({
      projectId,
      labels: label,
      state: 'all',
      orderBy: 'created_at',
      sort: 'asc',
      perPage: 100,
      maxPages: 5,
    }),
  ).filter((i) => isOurIssue(i, label));
  const order = (a: IssueWire, b: IssueWire): number => Number(b.state === 'opened') - Number(a.state === 'opened') || a.iid - b.iid;
  const trusted = issues.filter((i) => isTrustedIssue(i, opts.userId, template, ctx)).sort(order);
  if (trusted[0]) return { kind: 'ours', issue: trusted[0] };
  const planted = issues.filter((i) => i.state === 'opened').sort(order)[0];
  return planted ? { kind: 'conflict', issue: planted } : { kind: 'none' };
}

async function createIssue(
  opts: OnboardOptions,
  project: ProjectWire,
  description: string,
  template: TemplateId,
  ctx: DescriptionContext,
): Promise<IssueWire> {
  const create = async (): Promise<IssueWire> =>
    parseIssue(await opts.client.api.Issues.create(project.id, ISSUE_TITLE, { description, labels: opts.labels.join(',') }));
  try {
    return await create();
  } catch (err) {
    if (!(err instanceof UncertainWriteError)) throw err;
    // The POST may have created the issue: look before sending it again.
    const found = await findOurIssue(opts, project.id, opts.labels[0]!, template, ctx);
    if (found.kind === 'ours' && found.issue.state === 'opened') return found.issue;
    return create();
  }
}

interface Started {
  id: number;
  workloadId: string | number | null;
  note?: string;
}

/** GitLab created the workflow but did not start it: its id, and GitLab's message. */
class NotStarted extends OnboardingError {
  constructor(
    readonly workflowId: number,
    readonly gitlabMessage: string,
    status?: number,
  ) {
    super('WORKFLOW_NOT_STARTED', `workflow ${workflowId} created but not started: ${gitlabMessage}`, status);
  }
}

async function startWorkflow(opts: OnboardOptions, project: ProjectWire, issue: IssueWire): Promise<Started> {
  const body = {
    project_id: String(project.id),
    goal: workflowGoal(issue.web_url),
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
      // A 2xx without a workload id did not start a workload (as GitLab's web UI treats it).
      throw new NotStarted(workflow.id, workflow.workload?.message ?? 'GitLab returned no workload id', response.status);
    }
    return { id: workflow.id, workloadId };
  };
  try {
    return await post();
  } catch (err) {
    if (!(err instanceof UncertainWriteError)) throw err;
    // CreateWorkflowService notes "started session" on the issue before StartWorkflowService runs, so a 5xx
    // (GitLab's own 500 for a workload-branch failure, or a lost response) may leave a created workflow
    // behind: find it, and ask GitLab whether it started.
    const sessions = startedSessions(
      parseNotes(await opts.client.api.IssueNotes.all(project.id, issue.iid, { perPage: 100, maxPages: 5 })),
    );
    if (sessions.length === 0) return post();
    const newest = sessions[0]!;
    const status = await workflowStatus(opts, newest);
    if (status !== 'created') {
      return { id: newest, workloadId: null, note: `workflow response lost (${err.message}); GitLab shows session ${newest} as ${status}` };
    }
    throw new NotStarted(newest, err.gitlabMessage ?? `GitLab did not confirm its start (${err.message}; status created)`, err.status);
  }
}

// GitLab's own compensation: say why on the issue, then close it.
async function compensate(opts: OnboardOptions, projectId: number, iid: number, why: string, result: ProjectResult): Promise<void> {
  const api = opts.client.api;
  try {
    await api.IssueNotes.create(projectId, iid, compensationNote(why));
  } catch {
    // Without the comment a later run will not reopen the issue (it reports ISSUE_CLOSED instead); closing still
    // keeps the agent off an issue nobody works on.
  }
  try {
    await api.Issues.edit(projectId, iid, { stateEvent: 'close' });
    result.reason = `${result.reason}; issue #${iid} closed`;
  } catch (err) {
    result.reason = `${result.reason}; closing issue #${iid} also failed: ${describeError(err).message}`;
  }
}
