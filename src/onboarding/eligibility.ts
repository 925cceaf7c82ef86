// GitLab's own `create_duo_otel_workflow` ability (facts: gitlab-api.md §2.2,
// §2.3, §3.1), decided over what the REST API shows. Pure: the caller fetches
// the facts, these functions say whether a project may be onboarded and why not.
import type { LanguagesWire, ProjectWire } from './gitlab-wire.js';

export const DEVELOPER_ACCESS = 30;

export type IneligibleCode =
  | 'EMPTY_REPOSITORY'
  | 'ARCHIVED'
  | 'ISSUES_DISABLED'
  | 'DUO_WORKFLOWS_UNAVAILABLE'
  | 'DUO_REMOTE_FLOWS_DISABLED'
  | 'DUO_FOUNDATIONAL_FLOWS_DISABLED'
  | 'NO_PUSH_ACCESS'
  | 'NO_LANGUAGES';

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
