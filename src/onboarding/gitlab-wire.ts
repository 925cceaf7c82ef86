// The GitLab REST shapes the onboarding CLI reads (facts: gitlab-api.md §2.1,
// §3), parsed and checked where they enter; everything past these functions
// trusts the types. A body that does not match throws MALFORMED_RESPONSE.
import { OnboardingError } from './errors.js';

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
}

export interface NoteWire {
  id: number;
  body: string;
  system: boolean;
}

export interface UserWire {
  id: number;
  username: string;
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

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
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
  };
}

export function parseIssues(body: unknown): IssueWire[] {
  if (!Array.isArray(body)) fail('issue list', 'not a JSON array');
  return body.map(parseIssue);
}

export function parseNotes(body: unknown): NoteWire[] {
  if (!Array.isArray(body)) fail('note list', 'not a JSON array');
  return body.map((n) => {
    if (!isObject(n)) fail('note', 'not a JSON object');
    return { id: int(n, 'id', 'note'), body: typeof n.body === 'string' ? n.body : '', system: n.system === true };
  });
}

export function parseUser(body: unknown): UserWire {
  if (!isObject(body)) fail('user', 'not a JSON object');
  return { id: int(body, 'id', 'user'), username: str(body, 'username', 'user') };
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
