// The projects to onboard: an explicit list, or a group streamed page by page
// (offset pagination only on this endpoint, docs/onboarding.md#scope) so memory
// does not grow with the group's size: a page is fetched only when the previous
// one is used up. Projects shared into the group from elsewhere are not the
// group's and are left out unless asked for (with_shared defaults to true in
// GitLab).
import { GitbeakerRequestError } from '@gitbeaker/rest';
import { statusOf, type GitLabApi } from './gitlab-client.js';
import { OnboardingError } from './errors.js';
import { parseProjectRefs } from './gitlab-wire.js';

export type TargetSpec =
  { kind: 'projects'; refs: string[] } | { kind: 'group'; ref: string; includeSubgroups: boolean; includeShared?: boolean };

export interface TargetOptions {
  /**
   * An administrator is not a member of most projects, and min_access_level
   * keeps members' projects only (ProjectsFinder → authorized_projects): list
   * without it and let the per-project check decide.
   */
  userIsAdmin?: boolean;
}

export const GROUP_PAGE_SIZE = 100;

/** A project reference: a numeric id stays a number; anything else is a full path. */
export function projectRef(raw: string): string | number {
  return /^\d+$/.test(raw) ? Number(raw) : raw.replace(/^\/+|\/+$/g, '');
}

export async function* targets(api: GitLabApi, spec: TargetSpec, options: TargetOptions = {}): AsyncGenerator<string | number> {
  if (spec.kind === 'projects') {
    for (const r of spec.refs) yield projectRef(r);
    return;
  }
  const group = projectRef(spec.ref);
  for (let page: number | null = 1; page !== null;) {
    let response: { data: unknown; paginationInfo: { next: number | null; totalPages: number } };
    try {
      response = await api.Groups.allProjects(group, {
        page,
        perPage: GROUP_PAGE_SIZE,
        includeSubgroups: spec.includeSubgroups,
        withShared: spec.includeShared ?? false,
        archived: false,
        withIssuesEnabled: true,
        ...(options.userIsAdmin ? {} : { minAccessLevel: 30 }),
        simple: true,
        orderBy: 'id',
        sort: 'asc',
        showExpanded: true,
      });
    } catch (err) {
      if (err instanceof GitbeakerRequestError && statusOf(err) === 404) {
        throw new OnboardingError('NOT_FOUND', `group '${spec.ref}' not found, or not visible to this token`, 404);
      }
      throw err;
    }
    const refs = parseProjectRefs(response.data);
    for (const p of refs) yield p.id;
    const { next, totalPages } = response.paginationInfo;
    // GitLab.com may omit pagination headers: without them a full page means "maybe more".
    const headersMissing = Number.isNaN(totalPages) && next === null;
    page = next ?? (headersMissing && refs.length === GROUP_PAGE_SIZE ? page + 1 : null);
  }
}
