// The GitLab REST and GraphQL shapes the onboarding CLI reads
// (docs/onboarding.md#simulator-behaviours names the upstream files), parsed and checked where they
// enter; everything past these functions trusts the types. A body that does
// not match throws MALFORMED_RESPONSE.
import { OnboardingError } from './errors.js';
import { isJsonObject as isObject } from '../json-guards.js';

export interface AccessWire {
  access_level: number;
}

/** GET /projects/:id (ProjectWithAccess; the duo_* keys are EE and conditional). */
export interface ProjectWire {
  id: number;
  path_with_namespace: string;
  web_url: string;
  default_branch: string | null;
  empty_repo: boolean;
  archived: boolean;
  issues_enabled: boolean;
  /** Absent: the instance has no Duo workflows. */
  duo_remote_flows_enabled?: boolean;
  duo_foundational_flows_enabled?: boolean;
  permissions?: { project_access: AccessWire | null; group_access: AccessWire | null };
}

/** GET /projects/:id/languages: name → share (percent). */
export type LanguagesWire = Record<string, number>;

export interface IssueWire {
  iid: number;
  web_url: string;
  description: string;
  state: string;
  labels: string[];
  /** The issue's author; null when GitLab sent none (a deleted user shows as the ghost user, not null). */
  author_id: number | null;
}

export interface NoteWire {
  id: number;
  body: string;
  system: boolean;
  author_id: number | null;
}

/** GET /user: `is_admin` is only sent to administrators (API::Entities::UserWithAdmin). */
export interface UserWire {
  id: number;
  username: string;
  is_admin: boolean;
}

/**
 * GraphQL `project { duoFeaturesEnabled duoWorkflowStatusCheck { … } }`
 * (Types::Ai::DuoWorkflows::EnablementType). Fields newer than the instance
 * are absent (undefined), not false.
 */
export interface DuoStatusWire {
  /** Project.duoFeaturesEnabled; null when GitLab does not say. */
  duo_features_enabled: boolean | null;
  /** null: the status check itself was null (the user cannot read the project). */
  check: {
    enabled: boolean;
    create_duo_workflow_for_ci_allowed?: boolean;
    remote_flows_enabled: boolean | null;
    foundational_flows_enabled?: boolean | null;
    /** References such as 'developer/v1'; undefined on instances without the field. */
    enabled_foundational_flows?: string[] | null;
    checks: { name: string; value: boolean; message: string | null }[];
  } | null;
  /**
   * `aiCatalogConfiguredItems(projectId:, itemTypes: [FLOW], foundationalFlowReference: "developer/v1")`: the
   * project's developer-flow consumers, as GitLab's OpenTelemetry service looks them up; undefined on instances
   * without the field.
   */
  developer_flow?: { consumers: number; service_account: boolean };
}

/** POST /ai/duo_workflows/workflows → API::Entities::Ai::DuoWorkflows::Workflow (the part we read). */
export interface WorkflowWire {
  id: number;
  status?: string;
  /** workload.id: a string in the docs, a record id in code — both accepted. */
  workload: { id: string | number | null; message?: string } | null;
}

function fail(what: string, why: string): never {
  throw new OnboardingError('MALFORMED_RESPONSE', `GitLab returned a malformed ${what}: ${why}`);
}

function int(o: Record<string, unknown>, key: string, what: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(what, `'${key}' is not an integer`);
  return v;
}

function str(o: Record<string, unknown>, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== 'string') fail(what, `'${key}' is not a string`);
  return v;
}

function optBool(o: Record<string, unknown>, key: string, what: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') fail(what, `'${key}' is not a boolean`);
  return v;
}

function access(v: unknown, what: string): AccessWire | null {
  if (v === null || v === undefined) return null;
  if (!isObject(v)) fail(what, 'permissions entry is not an object');
  return { access_level: int(v, 'access_level', what) };
}

export function parseProject(body: unknown): ProjectWire {
  const what = 'project';
  if (!isObject(body)) fail(what, 'not a JSON object');
  const branch = body.default_branch;
  if (branch !== null && branch !== undefined && typeof branch !== 'string') fail(what, "'default_branch' is not a string");
  const project: ProjectWire = {
    id: int(body, 'id', what),
    path_with_namespace: str(body, 'path_with_namespace', what),
    web_url: str(body, 'web_url', what),
    default_branch: branch ?? null,
    empty_repo: optBool(body, 'empty_repo', what) ?? false,
    archived: optBool(body, 'archived', what) ?? false,
    // issues_enabled is evaluated for the current user; issues_access_level is the setting.
    issues_enabled: optBool(body, 'issues_enabled', what) ?? body.issues_access_level !== 'disabled',
  };
  if ('duo_remote_flows_enabled' in body) project.duo_remote_flows_enabled = optBool(body, 'duo_remote_flows_enabled', what) ?? false;
  if ('duo_foundational_flows_enabled' in body) {
    const v = optBool(body, 'duo_foundational_flows_enabled', what);
    if (v !== undefined) project.duo_foundational_flows_enabled = v;
  }
  if (isObject(body.permissions)) {
    project.permissions = {
      project_access: access(body.permissions.project_access, what),
      group_access: access(body.permissions.group_access, what),
    };
  }
  return project;
}

export function parseLanguages(body: unknown): LanguagesWire {
  if (!isObject(body)) fail('language list', 'not a JSON object');
  const out: LanguagesWire = {};
  for (const [name, share] of Object.entries(body)) {
    if (typeof share !== 'number' || !Number.isFinite(share)) fail('language list', `share of '${name}' is not a number`);
    out[name] = share;
  }
  return out;
}

export function parseIssue(body: unknown): IssueWire {
  const what = 'issue';
  if (!isObject(body)) fail(what, 'not a JSON object');
  const labels = body.labels;
  return {
    iid: int(body, 'iid', what),
    web_url: str(body, 'web_url', what),
    description: typeof body.description === 'string' ? body.description : '',
    state: str(body, 'state', what),
    labels: Array.isArray(labels) ? labels.filter((l): l is string => typeof l === 'string') : [],
    author_id: authorId(body.author),
  };
}

function authorId(author: unknown): number | null {
  return isObject(author) && typeof author.id === 'number' && Number.isInteger(author.id) ? author.id : null;
}

export function parseIssues(body: unknown): IssueWire[] {
  if (!Array.isArray(body)) fail('issue list', 'not a JSON array');
  return body.map(parseIssue);
}

export function parseNotes(body: unknown): NoteWire[] {
  if (!Array.isArray(body)) fail('note list', 'not a JSON array');
  return body.map((n) => {
    if (!isObject(n)) fail('note', 'not a JSON object');
    return {
      id: int(n, 'id', 'note'),
      body: typeof n.body === 'string' ? n.body : '',
      system: n.system === true,
      author_id: authorId(n.author),
    };
  });
}

export function parseUser(body: unknown): UserWire {
  if (!isObject(body)) fail('user', 'not a JSON object');
  return { id: int(body, 'id', 'user'), username: str(body, 'username', 'user'), is_admin: body.is_admin === true };
}

export function parseWorkflow(body: unknown): WorkflowWire {
  const what = 'workflow';
  if (!isObject(body)) fail(what, 'not a JSON object');
  const w = body.workload;
  let workload: WorkflowWire['workload'] = null;
  if (isObject(w)) {
    const id = w.id;
    if (id !== null && id !== undefined && typeof id !== 'string' && typeof id !== 'number')
      fail(what, "'workload.id' is neither a string nor a number");
    workload = { id: id ?? null };
    if (typeof w.message === 'string' && w.message !== '') workload.message = w.message;
  }
  return { id: int(body, 'id', what), ...(typeof body.status === 'string' ? { status: body.status } : {}), workload };
}

/** Group project list entries (`simple=true`): all we need is how to address the project. */
export function parseProjectRefs(body: unknown): { id: number; path_with_namespace: string }[] {
  if (!Array.isArray(body)) fail('group project list', 'not a JSON array');
  return body.map((p) => {
    if (!isObject(p)) fail('group project', 'not a JSON object');
    return { id: int(p, 'id', 'group project'), path_with_namespace: str(p, 'path_with_namespace', 'group project') };
  });
}

function optBoolOrNull(o: Record<string, unknown>, key: string, what: string): boolean | null | undefined {
  if (!(key in o)) return undefined;
  const v = o[key];
  if (v === null) return null;
  if (typeof v !== 'boolean') fail(what, `'${key}' is not a boolean`);
  return v;
}

/** The `data` of the pre-check query (a GraphQL answer without `errors`). */
export function parseDuoStatus(data: unknown): DuoStatusWire | null {
  const what = 'Duo status check';
  if (!isObject(data)) fail(what, "'data' is not an object");
  const project = data.project;
  if (project === null || project === undefined) return null;
  if (!isObject(project)) fail(what, "'project' is not an object");
  const features = optBoolOrNull(project, 'duoFeaturesEnabled', what) ?? null;
  const raw = project.duoWorkflowStatusCheck;
  if (raw === null || raw === undefined) return { duo_features_enabled: features, check: null };
  if (!isObject(raw)) fail(what, "'duoWorkflowStatusCheck' is not an object");
  const enabled = optBoolOrNull(raw, 'enabled', what);
  if (typeof enabled !== 'boolean') fail(what, "'enabled' is not a boolean");
  const checksRaw = raw.checks ?? [];
  if (!Array.isArray(checksRaw)) fail(what, "'checks' is not a list");
  const checks = checksRaw.map((c) => {
    if (!isObject(c) || typeof c.name !== 'string' || typeof c.value !== 'boolean') fail(what, 'a check is not {name, value}');
    return { name: c.name, value: c.value, message: typeof c.message === 'string' ? c.message : null };
  });
  const check: NonNullable<DuoStatusWire['check']> = {
    enabled,
    remote_flows_enabled: optBoolOrNull(raw, 'remoteFlowsEnabled', what) ?? null,
    checks,
  };
  const create = optBoolOrNull(raw, 'createDuoWorkflowForCiAllowed', what);
  if (typeof create === 'boolean') check.create_duo_workflow_for_ci_allowed = create;
  const foundational = optBoolOrNull(raw, 'foundationalFlowsEnabled', what);
  if (foundational !== undefined) check.foundational_flows_enabled = foundational;
  if ('enabledFoundationalFlows' in raw) {
    const flows = raw.enabledFoundationalFlows;
    if (flows === null) check.enabled_foundational_flows = null;
    else if (Array.isArray(flows) && flows.every((f) => typeof f === 'string')) check.enabled_foundational_flows = flows;
    else fail(what, "'enabledFoundationalFlows' is not a list of strings");
  }
  const status: DuoStatusWire = { duo_features_enabled: features, check };
  if ('aiCatalogConfiguredItems' in data) status.developer_flow = parseConsumers(data.aiCatalogConfiguredItems);
  return status;
}

function idOf(v: unknown): boolean {
  return isObject(v) && typeof v.id === 'string' && v.id !== '';
}

// The first consumer decides, as in GitLab's service: a project's consumer takes its parent's service account.
function parseConsumers(raw: unknown): { consumers: number; service_account: boolean } {
  const what = 'configured AI Catalog items';
  if (!isObject(raw) || !Array.isArray(raw.nodes)) fail(what, "'nodes' is not a list");
  const nodes = (raw.nodes as unknown[]).filter((n) => n !== null);
  const first: unknown = nodes[0];
  if (first === undefined) return { consumers: 0, service_account: false };
  if (!isObject(first)) fail(what, 'a node is not an object');
  const parent = first.parentItemConsumer;
  const account = isObject(first.project) ? isObject(parent) && idOf(parent.serviceAccount) : idOf(first.serviceAccount);
  return { consumers: nodes.length, service_account: account };
}

/** GET /ai/duo_workflows/workflows/:id: the workflow's status (status_name), the part we read. */
export function parseWorkflowStatus(body: unknown): { id: number; status: string } {
  const what = 'workflow';
  if (!isObject(body)) fail(what, 'not a JSON object');
  return { id: int(body, 'id', what), status: str(body, 'status', what) };
}
