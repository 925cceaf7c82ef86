// Parsing GitLab's REST and GraphQL answers at the boundary: absent fields
// stay absent, wrong types are MALFORMED_RESPONSE.
import t from 'tap';
import {
  parseDuoStatus,
  parseIssue,
  parseLanguages,
  parseProject,
  parseUser,
  parseWorkflow,
  parseWorkflowStatus,
} from '../../src/onboarding/gitlab-wire.js';

t.test('wire parsing', async (t) => {
  const p = parseProject({
    id: 1,
    path_with_namespace: 'a/b',
    web_url: 'u',
    default_branch: null,
    empty_repo: true,
    archived: false,
    issues_access_level: 'disabled',
    permissions: { project_access: null, group_access: null },
  });
  t.equal(p.issues_enabled, false, 'issues_access_level used when issues_enabled is absent');
  t.notOk('duo_remote_flows_enabled' in p, 'absent Duo key stays absent');
  t.throws(() => parseProject({ id: '1' }), { code: 'MALFORMED_RESPONSE' });
  t.throws(() => parseProject([]), { code: 'MALFORMED_RESPONSE' });
  t.throws(() => parseLanguages({ Go: '50' }), { code: 'MALFORMED_RESPONSE' });
  t.same(parseWorkflow({ id: 3, workload: { id: 77 } }).workload, { id: 77 }, 'numeric workload id accepted');
  t.same(parseWorkflow({ id: 3, workload: { id: null, message: 'boom' } }).workload, { id: null, message: 'boom' });
  t.throws(() => parseWorkflow({ workload: {} }), { code: 'MALFORMED_RESPONSE' });
  t.same(parseWorkflowStatus({ id: 5, status: 'created', workload: null }), { id: 5, status: 'created' });
  t.throws(() => parseWorkflowStatus({ id: 5 }), { code: 'MALFORMED_RESPONSE' });
  t.same(parseUser({ id: 1, username: 'root', is_admin: true }), { id: 1, username: 'root', is_admin: true });
  t.equal(parseUser({ id: 2, username: 'dev' }).is_admin, false, 'non-admins are not sent is_admin');
  t.equal(parseIssue({ iid: 1, web_url: 'u', state: 'opened', author: { id: 9 } }).author_id, 9);
  t.equal(parseIssue({ iid: 1, web_url: 'u', state: 'opened' }).author_id, null);
  t.same(
    parseDuoStatus({
      project: {
        duoFeaturesEnabled: false,
        duoWorkflowStatusCheck: { enabled: true, remoteFlowsEnabled: null, checks: [{ name: 'a', value: false, message: null }] },
      },
    }),
    {
      duo_features_enabled: false,
      check: { enabled: true, remote_flows_enabled: null, checks: [{ name: 'a', value: false, message: null }] },
    },
    'fields the query did not get stay absent',
  );
  t.equal(parseDuoStatus({ project: null }), null);
  const consumers = (nodes: unknown[]): unknown => ({
    project: { duoWorkflowStatusCheck: { enabled: true } },
    aiCatalogConfiguredItems: { nodes },
  });
  t.same(parseDuoStatus(consumers([]))!.developer_flow, { consumers: 0, service_account: false });
  t.same(
    parseDuoStatus(
      consumers([{ id: 'c', project: { id: 'p' }, serviceAccount: null, parentItemConsumer: { serviceAccount: { id: 'u' } } }]),
    )!.developer_flow,
    { consumers: 1, service_account: true },
    "a project's consumer uses its parent's service account",
  );
  t.same(
    parseDuoStatus(consumers([{ id: 'c', project: { id: 'p' }, serviceAccount: { id: 'u' }, parentItemConsumer: null }]))!.developer_flow,
    { consumers: 1, service_account: false },
    "…and not its own, as GitLab's service resolves it",
  );
  t.same(parseDuoStatus(consumers([{ id: 'c', project: null, serviceAccount: { id: 'u' } }]))!.developer_flow, {
    consumers: 1,
    service_account: true,
  });
  t.notOk('developer_flow' in parseDuoStatus({ project: { duoWorkflowStatusCheck: { enabled: true } } })!, 'absent on older instances');
  t.same(parseDuoStatus({ project: { duoFeaturesEnabled: true, duoWorkflowStatusCheck: null } }), {
    duo_features_enabled: true,
    check: null,
  });
  t.throws(() => parseDuoStatus({ project: { duoWorkflowStatusCheck: { enabled: 'yes' } } }), { code: 'MALFORMED_RESPONSE' });
  t.throws(() => parseDuoStatus({ project: { duoWorkflowStatusCheck: { enabled: true, enabledFoundationalFlows: [1] } } }), {
    code: 'MALFORMED_RESPONSE',
  });
});
