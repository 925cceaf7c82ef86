// Eligibility: the REST project checks (repository, issues, Duo flags, push
// access) and GitLab's own Duo status pre-checks, reported in GitLab's words.
import t from 'tap';
import { accessFromPermissions, checkAccess, checkDuoStatus, checkLanguages, checkProject } from '../../src/onboarding/eligibility.js';
import type { DuoStatusWire, ProjectWire } from '../../src/onboarding/gitlab-wire.js';

const base: ProjectWire = {
  id: 1,
  path_with_namespace: 'a/b',
  web_url: 'https://g/a/b',
  default_branch: 'main',
  empty_repo: false,
  archived: false,
  issues_enabled: true,
  duo_remote_flows_enabled: true,
  duo_foundational_flows_enabled: true,
  permissions: { project_access: null, group_access: { access_level: 40 } },
};

t.test('eligibility', async (t) => {
  t.equal(checkProject(base), null);
  t.equal(checkProject({ ...base, duo_foundational_flows_enabled: undefined })?.code, undefined, 'absent foundational flag is not "false"');
  const { duo_remote_flows_enabled: _drop, ...noDuo } = base;
  t.equal(checkProject(noDuo)?.reason, 'Duo workflows not available');
  t.equal(checkProject({ ...base, empty_repo: true, archived: true })?.code, 'EMPTY_REPOSITORY');
  t.equal(accessFromPermissions(base), 40);
  t.equal(
    accessFromPermissions({ ...base, permissions: { project_access: { access_level: 30 }, group_access: { access_level: 20 } } }),
    30,
  );
  t.equal(accessFromPermissions({ ...base, permissions: { project_access: null, group_access: null } }), null);
  t.equal(checkAccess(30), null);
  t.equal(checkAccess(29)?.code, 'NO_PUSH_ACCESS');
  t.equal(checkAccess(null)?.code, 'NO_PUSH_ACCESS');
  t.equal(checkLanguages({})?.code, 'NO_LANGUAGES');
  t.equal(checkLanguages({ Go: 1 }), null);
});

const passing: DuoStatusWire = {
  duo_features_enabled: true,
  check: {
    enabled: true,
    create_duo_workflow_for_ci_allowed: true,
    remote_flows_enabled: true,
    foundational_flows_enabled: true,
    enabled_foundational_flows: ['developer/v1', 'code_review/v1'],
    checks: [
      { name: 'feature_flag', value: true, message: 'duo_workflow feature flag must be enabled.' },
      { name: 'duo_features_enabled', value: true, message: 'Project must have GitLab Duo features enabled.' },
      { name: 'developer_access', value: true, message: 'User must have permission to use Duo Workflows in the project.' },
      { name: 'feature_available', value: true, message: 'duo_workflow licensed feature must be available.' },
    ],
  },
};
const failing = (name: string): DuoStatusWire => ({
  ...passing,
  check: { ...passing.check!, checks: passing.check!.checks.map((c) => (c.name === name ? { ...c, value: false } : c)) },
});

t.test("GitLab's Duo pre-checks, in GitLab's words", async (t) => {
  t.equal(checkDuoStatus(passing), null);
  t.match(checkDuoStatus(null), { code: 'DUO_STATUS_UNAVAILABLE' });
  t.match(checkDuoStatus({ duo_features_enabled: true, check: null }), { code: 'DUO_STATUS_UNAVAILABLE' });
  t.match(checkDuoStatus({ ...passing, duo_features_enabled: false }), {
    code: 'DUO_FEATURES_DISABLED',
    reason: 'Project must have GitLab Duo features enabled.',
  });
  t.match(checkDuoStatus(failing('developer_access')), { code: 'DUO_ROLE_MISSING', reason: /permission to use Duo Workflows/ });
  t.match(checkDuoStatus(failing('feature_available')), { code: 'DUO_SEAT_OR_LICENCE_MISSING', reason: /licensed feature/ });
  t.match(checkDuoStatus(failing('something_new')), null, 'an unknown check that passes is no reason');
  const unknownFailing: DuoStatusWire = {
    ...passing,
    check: { ...passing.check!, checks: [{ name: 'something_new', value: false, message: 'New rule.' }] },
  };
  t.match(checkDuoStatus(unknownFailing), { code: 'DUO_CHECK_FAILED', reason: 'New rule.' });
  t.match(checkDuoStatus({ ...passing, check: { ...passing.check!, enabled: false } }), { code: 'DUO_AGENT_PLATFORM_DISABLED' });
  t.match(checkDuoStatus({ ...passing, check: { ...passing.check!, create_duo_workflow_for_ci_allowed: false } }), {
    code: 'DUO_WORKFLOW_FORBIDDEN',
    reason: 'forbidden to access duo workflow',
  });
  t.match(checkDuoStatus({ ...passing, check: { ...passing.check!, remote_flows_enabled: false } }), { code: 'DUO_REMOTE_FLOWS_DISABLED' });
  t.match(checkDuoStatus({ ...passing, check: { ...passing.check!, foundational_flows_enabled: false } }), {
    code: 'DUO_FOUNDATIONAL_FLOWS_DISABLED',
  });
  t.match(checkDuoStatus({ ...passing, check: { ...passing.check!, enabled_foundational_flows: ['code_review/v1'] } }), {
    code: 'DEVELOPER_FLOW_NOT_ENABLED',
    reason: 'Could not find enabled developer flow for this project',
  });
  t.equal(checkDuoStatus({ ...passing, developer_flow: { consumers: 1, service_account: true } }), null);
  t.match(checkDuoStatus({ ...passing, developer_flow: { consumers: 0, service_account: false } }), {
    code: 'DEVELOPER_FLOW_NOT_ENABLED',
  });
  t.match(checkDuoStatus({ ...passing, developer_flow: { consumers: 1, service_account: false } }), {
    code: 'SERVICE_ACCOUNT_MISSING',
    reason: 'Could not resolve the service account for this flow',
  });
  const {
    create_duo_workflow_for_ci_allowed: _c,
    foundational_flows_enabled: _f,
    enabled_foundational_flows: _e,
    ...legacy
  } = passing.check!;
  t.equal(checkDuoStatus({ ...passing, check: legacy }), null, 'fields an older GitLab lacks are not held against the project');
});
