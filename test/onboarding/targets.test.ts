// The projects to onboard, through a real Gitbeaker client against the GitLab
// REST simulator on loopback: explicit references, a group streamed page by
// page (a page fetched only when the previous one is used up), subgroups,
// projects shared into the group, an administrator's listing and a missing
// group.
import t from 'tap';
import { createGitLabClient } from '../../src/onboarding/gitlab-client.js';
import { GROUP_PAGE_SIZE, projectRef, targets, type TargetSpec } from '../../src/onboarding/targets.js';
import { GitLabRestSimulator, type SimProject } from '../support/gitlab-rest.js';

const ROUTE = 'GET /groups/:id/projects';

t.test('project references: numeric ids stay numbers, paths lose stray slashes', async (t) => {
  t.equal(projectRef('42'), 42);
  t.equal(projectRef('/acme/shop/'), 'acme/shop');
  t.equal(projectRef('4x2'), '4x2');
});

async function collect(gen: AsyncGenerator<string | number>): Promise<(string | number)[]> {
  const out: (string | number)[] = [];
  for await (const id of gen) out.push(id);
  return out;
}

const own: SimProject[] = Array.from({ length: 2 * GROUP_PAGE_SIZE + 30 }, (_, i) => ({
  id: i + 1,
  path_with_namespace: `acme/p${i + 1}`,
  group_id: 1,
  project_access_level: 30,
}));
const sim = new GitLabRestSimulator({
  users: { 'tok-dev': { id: 1, username: 'dev' }, 'tok-admin': { id: 2, username: 'root', is_admin: true } },
  groups: [
    { id: 1, full_path: 'acme' },
    { id: 2, full_path: 'acme/sub', parent_id: 1 },
    { id: 3, full_path: 'other' },
  ],
  projects: [
    ...own,
    { id: 1001, path_with_namespace: 'acme/sub/deep', group_id: 2, project_access_level: 30 },
    { id: 1002, path_with_namespace: 'other/shared-in', group_id: 3, shared_with_group_ids: [1], project_access_level: 30 },
    { id: 1003, path_with_namespace: 'acme/not-a-member', group_id: 1, project_access_level: null, group_access_level: null },
    { id: 1004, path_with_namespace: 'acme/old', group_id: 1, archived: true, project_access_level: 30 },
  ],
});
const running = await sim.start();
t.teardown(() => running.stop());
const dev = createGitLabClient({ url: running.url, token: 'tok-dev', timeoutMs: 10_000, retries: 0 });
const admin = createGitLabClient({ url: running.url, token: 'tok-admin', timeoutMs: 10_000, retries: 0 });
const group = (extra: Partial<Extract<TargetSpec, { kind: 'group' }>> = {}): TargetSpec => ({
  kind: 'group',
  ref: 'acme',
  includeSubgroups: false,
  ...extra,
});

t.test('explicit projects are yielded as given, without a request', async (t) => {
  const before = sim.count(ROUTE);
  t.same(await collect(targets(dev.api, { kind: 'projects', refs: ['7', 'acme/shop'] })), [7, 'acme/shop']);
  t.equal(sim.count(ROUTE), before);
});

t.test('a group is streamed page by page, lazily, in id order', async (t) => {
  const before = sim.count(ROUTE);
  const gen = targets(dev.api, group());
  const first: (string | number)[] = [];
  for (let i = 0; i < GROUP_PAGE_SIZE; i++) first.push((await gen.next()).value as number);
  t.same(
    first,
    own.slice(0, GROUP_PAGE_SIZE).map((p) => p.id),
  );
  t.equal(sim.count(ROUTE) - before, 1, 'one page fetched while the first is being used');
  const rest: (string | number)[] = [];
  for await (const id of gen) rest.push(id);
  t.same(
    rest,
    own.slice(GROUP_PAGE_SIZE).map((p) => p.id),
    'own projects only: no shared, archived or non-member project',
  );
  t.equal(sim.count(ROUTE) - before, 3, 'three pages in all');
});

t.test('subgroups and shared projects only when asked for', async (t) => {
  const withSub = await collect(targets(dev.api, group({ includeSubgroups: true })));
  t.ok(withSub.includes(1001), 'the subgroup project is listed');
  t.notOk(withSub.includes(1002));
  const withShared = await collect(targets(dev.api, group({ includeShared: true })));
  t.ok(withShared.includes(1002), 'the shared-in project is listed');
  t.notOk(withShared.includes(1001));
});

t.test('an administrator lists projects without being a member of them', async (t) => {
  t.notOk((await collect(targets(admin.api, group()))).includes(1003), 'min_access_level hides them when not told the user is admin');
  t.ok((await collect(targets(admin.api, group(), { userIsAdmin: true }))).includes(1003));
});

t.test('a missing group is NOT_FOUND, naming the group', async (t) => {
  await t.rejects(collect(targets(dev.api, group({ ref: 'nope' }))), { code: 'NOT_FOUND', status: 404, message: /group 'nope' not found/ });
});
