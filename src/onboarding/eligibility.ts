// GitLab's own checks before it writes anything (docs/onboarding.md#how-the-cli-decides):
// the `create_duo_otel_workflow` ability over what the REST project shows, and
// the Duo Agent Platform status check over what GraphQL shows. Pure: the caller
// fetches the answers, these functions say whether a project may be onboarded
// and why not, in GitLab's words where GitLab has them.
import type { DuoStatusWire, LanguagesWire, ProjectWire } from './gitlab-wire.js';

export const DEVELOPER_ACCESS = 30;

export type IneligibleCode =
  | 'EMPTY_REPOSITORY'
  | 'ARCHIVED'
  | 'ISSUES_DISABLED'
  | 'DUO_WORKFLOWS_UNAVAILABLE'
  | 'DUO_REMOTE_FLOWS_DISABLED'
  | 'DUO_FOUNDATIONAL_FLOWS_DISABLED'
  | 'NO_PUSH_ACCESS'
  | 'NO_LANGUAGES'
  | 'DUO_STATUS_UNAVAILABLE'
  | 'DUO_FEATURES_DISABLED'
  | 'DUO_ROLE_MISSING'
  | 'DUO_SEAT_OR_LICENCE_MISSING'
  | 'DUO_CHECK_FAILED'
  | 'DUO_AGENT_PLATFORM_DISABLED'
  | 'DUO_WORKFLOW_FORBIDDEN'
  | 'DEVELOPER_FLOW_NOT_ENABLED'
  | 'SERVICE_ACCOUNT_MISSING';

export interface Ineligible {
  code: IneligibleCode;
  reason: string;
}

const no = (code: IneligibleCode, reason: string): Ineligible => ({ code, reason });

/** Checks answerable from GET /projects/:id alone; null when they all pass. */
export function checkProject(p: ProjectWire): Ineligible | null {
  if (p.empty_repo) return no('EMPTY_REPOSITORY', 'empty repository');
  // `archived` is true when the project or an ancestor group is archived; push_code is refused either way.
  if (p.archived) return no('ARCHIVED', 'archived');
  if (!p.issues_enabled) return no('ISSUES_DISABLED', 'issues disabled');
  // The key is only exposed when the instance has Duo workflows (licence + Duo features on).
  if (p.duo_remote_flows_enabled === undefined) return no('DUO_WORKFLOWS_UNAVAILABLE', 'Duo workflows not available');
  if (!p.duo_remote_flows_enabled) return no('DUO_REMOTE_FLOWS_DISABLED', 'Duo remote flows disabled (duo_remote_flows_enabled is false)');
  if (p.duo_foundational_flows_enabled === false) {
    return no('DUO_FOUNDATIONAL_FLOWS_DISABLED', 'Duo foundational flows disabled (duo_foundational_flows_enabled is false)');
  }
  return null;
}

/**
 * The token user's access level as `permissions` shows it, or null when it
 * cannot tell: both levels null happens when access comes through an invited
 * group (or admin), which `permissions` does not reflect.
 */
export function accessFromPermissions(p: ProjectWire): number | null {
  const levels = [p.permissions?.project_access?.access_level, p.permissions?.group_access?.access_level].filter(
    (l): l is number => typeof l === 'number',
  );
  return levels.length > 0 ? Math.max(...levels) : null;
}

/** Push code needs Developer (30) or above. `level` null: no membership found at all. */
export function checkAccess(level: number | null): Ineligible | null {
  if (level === null || level < DEVELOPER_ACCESS) {
    return no('NO_PUSH_ACCESS', `the token's user cannot push code (access level ${level ?? 'none'}, Developer (30) needed)`);
  }
  return null;
}

/** An empty object after the second look: no detected language, as GitLab's rule requires. */
export function checkLanguages(languages: LanguagesWire): Ineligible | null {
  if (Object.keys(languages).length === 0) return no('NO_LANGUAGES', 'no detected repository language (yet)');
  return null;
}

/** The foundational flow GitLab's own OpenTelemetry service starts, and so do we. */
export const DEVELOPER_FLOW_REFERENCE = 'developer/v1';

// Names of Ai::DuoWorkflows::EnablementCheckService's checks → our codes.
const CHECK_CODES: Record<string, IneligibleCode> = {
  duo_features_enabled: 'DUO_FEATURES_DISABLED',
  developer_access: 'DUO_ROLE_MISSING',
  feature_available: 'DUO_SEAT_OR_LICENCE_MISSING',
};

/**
 * GitLab's pre-checks from the GraphQL `duoWorkflowStatusCheck` and
 * `Project.duoFeaturesEnabled`, in the order GitLab's own services refuse;
 * null when they all pass. A field the instance does not have (undefined) is
 * not held against the project.
 */
export function checkDuoStatus(status: DuoStatusWire | null): Ineligible | null {
  if (status === null || status.check === null) {
    return no('DUO_STATUS_UNAVAILABLE', 'GitLab returned no Duo Agent Platform status for this project and token');
  }
  const { check } = status;
  if (status.duo_features_enabled === false) return no('DUO_FEATURES_DISABLED', 'Project must have GitLab Duo features enabled.');
  for (const c of check.checks) {
    if (c.value) continue;
    return no(CHECK_CODES[c.name] ?? 'DUO_CHECK_FAILED', c.message ?? `Duo Agent Platform check '${c.name}' failed`);
  }
  if (!check.enabled) return no('DUO_AGENT_PLATFORM_DISABLED', 'Duo Agent Platform is not enabled for this project');
  if (check.create_duo_workflow_for_ci_allowed === false) {
    // CreateWorkflowService's message when the :create_duo_workflow_for_ci ability is missing.
    return no('DUO_WORKFLOW_FORBIDDEN', 'forbidden to access duo workflow');
  }
  if (check.remote_flows_enabled === false) {
    return no('DUO_REMOTE_FLOWS_DISABLED', 'Duo remote flows disabled (duo_remote_flows_enabled is false)');
  }
  if (check.foundational_flows_enabled === false) {
    return no('DUO_FOUNDATIONAL_FLOWS_DISABLED', 'Duo foundational flows disabled (duo_foundational_flows_enabled is false)');
  }
  const flows = check.enabled_foundational_flows;
  const consumers = status.developer_flow;
  if ((Array.isArray(flows) && !flows.includes(DEVELOPER_FLOW_REFERENCE)) || consumers?.consumers === 0) {
    // Ai::DuoWorkflows::Otel::CreateWorkflowService's messages for the same conditions.
    return no('DEVELOPER_FLOW_NOT_ENABLED', 'Could not find enabled developer flow for this project');
  }
  if (consumers && !consumers.service_account) return no('SERVICE_ACCOUNT_MISSING', 'Could not resolve the service account for this flow');
  return null;
}
