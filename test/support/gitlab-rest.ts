// A GitLab API simulator on loopback: the subset the onboarding CLI uses
// (projects with permissions and the Duo fields, languages, members, raw
// repository files, issues and notes, group projects with offset pagination,
// Duo workflows and their status, the GraphQL Duo status check) with GitLab's
// status codes and error bodies. Each behaviour is transcribed from GitLab's
// source; docs/onboarding.md#simulator-behaviours names the upstream file for
// each. Fault injection and a token bucket let tests and benchmarks make it
// misbehave the way a busy GitLab does; counters by route let them assert on
// what the client sent.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SimUser {
  id: number;
  username: string;
  /** An administrator: sees and can push to every project without a membership. */
  is_admin?: boolean;
}

export interface SimProject {
  id: number;
  /** e.g. 'acme/shop'; its namespace is everything before the last '/'. */
  path_with_namespace: string;
  /** The group that holds it (for GET /groups/:id/projects). */
  group_id?: number;
  default_branch?: string | null;
  empty_repo?: boolean;
  archived?: boolean;
  issues_enabled?: boolean;
  /** Absent (undefined) models an instance without Duo workflows: the key is not sent. */
  duo_remote_flows_enabled?: boolean;
  duo_foundational_flows_enabled?: boolean;
  project_access_level?: number | null;
  group_access_level?: number | null;
  /** Access through invited groups: visible only through members/all. */
  inherited_members?: Record<number, number>;
  /** Groups this project is shared with (it is listed under them unless with_shared=false). */
  shared_with_group_ids?: number[];
  /** Project.duoFeaturesEnabled (default true). */
  duo_features_enabled?: boolean;
  /** duoWorkflowStatusCheck.enabled: the Duo Agent Platform is available for the project (default true). */
  duo_agent_platform_enabled?: boolean;
  /** The user holds a Duo seat (allowed_to_use?(:duo_agent_platform)); false fails the feature_available check. */
  duo_seat?: boolean;
  /** Minimum role the admin set for Duo workflows (default Developer, 30); below it developer_access fails. */
  duo_min_access_level?: number;
  /** The developer/v1 flow is enabled (has an item consumer) for the project (default true). */
  developer_flow_enabled?: boolean;
  /** The developer/v1 flow's service account resolves (default true). */
  service_account?: boolean;
  languages?: Record<string, number>;
  /** How many GET /languages calls answer {} before detection "finishes". */
  languages_pending_calls?: number;
  /** Repository files at the default branch, by path. */
  files?: Record<string, string>;
  /**
   * What the start step of POST /ai/duo_workflows/workflows does for this
   * project, after the workflow row and its system note exist:
   * ok: starts (workload id); source-ref-missing / workflow-workload-failure:
   * GitLab's 500 (WorkloadBranchService / the workflows_workloads row);
   * workload-failure: 422 (RunWorkloadService refused the pipeline).
   */
  workflow_outcome?: 'ok' | 'source-ref-missing' | 'workflow-workload-failure' | 'workload-failure';
  /** How many more POSTs get workflow_outcome before the start succeeds (default: all of them). */
  workflow_outcome_times?: number;
}

export interface SimGroup {
  id: number;
  full_path: string;
  parent_id?: number;
}

export interface SimIssue {
  id: number;
  iid: number;
  project_id: number;
  title: string;
  description: string;
  state: 'opened' | 'closed';
  labels: string[];
  web_url: string;
  author: { id: number; username: string };
  closed_by?: { id: number; username: string } | null;
  notes: SimNote[];
}

export interface SimNote {
  id: number;
  body: string;
  system: boolean;
  author: { id: number; username: string };
}

export interface SimWorkflow {
  id: number;
  project_id: number;
  /** The user who created it: GET /ai/duo_workflows/workflows/:id answers them only. */
  user_id: number;
  issue_iid: number | null;
  body: Record<string, unknown>;
  status: 'created' | 'running';
}

/** A misbehaviour for requests matching `method` and `route` (e.g. 'POST /projects/:id/issues'). */
export interface Fault {
  method: string;
  route: string;
  /**
   * 429: rate limited, with Retry-After. 429-bare: an application-limit 429
   * without any header, as older GitLab versions send it. 502: bad gateway
   * before doing anything. 502-after-write: performs the request, then answers
   * 502 (the response was lost). malformed: 200 with a body that is not JSON.
   * hang: never answers.
   */
  kind: '429' | '429-bare' | '502' | '502-after-write' | 'malformed' | 'hang';
  /** How many matching requests get the fault (default 1). */
  times?: number;
  retryAfterSeconds?: number;
}

export interface GitLabRestSimulatorOptions {
  users?: Record<string, SimUser>;
  /** Tokens sent as JOB-TOKEN: accepted for reads, refused (401) for writes. */
  jobTokens?: string[];
  projects?: SimProject[];
  groups?: SimGroup[];
  faults?: Fault[];
  /** Token bucket in front of every route: beyond it, 429 with Retry-After. */
  rateLimit?: { perSecond: number; burst?: number };
  /** Keep every request's method, route and arrival time in `log` (tests; off for benchmarks). */
  logRequests?: boolean;
  /** Status-check fields this "older GitLab" does not know: a query naming one fails as GitLab's schema does. */
  graphqlUnknownFields?: string[];
  host?: string;
}

export interface RunningSimulator {
  url: string;
  stop(): Promise<void>;
  state: GitLabRestSimulator;
}

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  segments: string[];
  query: URLSearchParams;
  user: SimUser | null;
  viaJobToken: boolean;
  body: Record<string, unknown>;
  route: string;
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export class GitLabRestSimulator {
  readonly users: Record<string, SimUser>;
  readonly jobTokens: Set<string>;
  readonly projects = new Map<number, SimProject>();
  readonly groups = new Map<number, SimGroup>();
  readonly issues = new Map<number, SimIssue[]>();
  readonly workflows: SimWorkflow[] = [];
  faults: Fault[];
  /** Requests received, by 'METHOD /route/:pattern'. */
  readonly counts: Record<string, number> = {};
  /** Write requests received (POST/PUT/PATCH/DELETE), whatever their outcome. */
  writes = 0;
  requests = 0;
  rateLimited = 0;
  readonly log: { method: string; route: string; at: number }[] = [];
  url = '';
  private server: Server | null = null;
  private nextId = 1000;
  private bucket: { tokens: number; at: number; perSecond: number; burst: number } | null;
  private readonly hanging = new Set<ServerResponse>();

  constructor(private readonly options: GitLabRestSimulatorOptions = {}) {
    this.users = options.users ?? { 'glpat-good': { id: 1, username: 'otel-bot' } };
    this.jobTokens = new Set(options.jobTokens ?? []);
    for (const p of options.projects ?? []) this.addProject(p);
    for (const g of options.groups ?? []) this.groups.set(g.id, g);
    this.faults = [...(options.faults ?? [])];
    const rl = options.rateLimit;
    this.bucket = rl
      ? { tokens: rl.burst ?? rl.perSecond, at: performance.now(), perSecond: rl.perSecond, burst: rl.burst ?? rl.perSecond }
      : null;
  }

  addProject(p: SimProject): void {
    this.projects.set(p.id, p);
    if (!this.issues.has(p.id)) this.issues.set(p.id, []);
  }

  async start(): Promise<RunningSimulator> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.json(res, 500, { message: `500 Internal Server Error: ${String(err)}` });
      });
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve) => server.listen(0, this.options.host ?? '127.0.0.1', resolve));
    this.server = server;
    const { port } = server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
    return { url: this.url, stop: () => this.stop(), state: this };
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Change (or with null, lift) the token bucket between runs. */
  setRateLimit(rl: { perSecond: number; burst?: number } | null): void {
    this.bucket = rl
      ? { tokens: rl.burst ?? rl.perSecond, at: performance.now(), perSecond: rl.perSecond, burst: rl.burst ?? rl.perSecond }
      : null;
  }

  count(route: string): number {
    return this.counts[route] ?? 0;
  }

  issuesOf(projectId: number): SimIssue[] {
    return this.issues.get(projectId) ?? [];
  }

  // --- request handling -----------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://sim');
    const method = (req.method ?? 'GET').toUpperCase();
    // Keep %2F inside a segment: project ids may be URL-encoded paths.
    const segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const graphql = segments.length === 2 && segments[0] === 'api' && segments[1] === 'graphql';
    if (!graphql && (segments[0] !== 'api' || segments[1] !== 'v4')) return this.json(res, 404, { error: '404 Not Found' });
    const rest = graphql ? ['graphql'] : segments.slice(2);
    const route = graphql ? `${method} /graphql` : `${method} /${routePattern(rest)}`;
    this.requests += 1;
    this.counts[route] = (this.counts[route] ?? 0) + 1;
    if (this.options.logRequests) this.log.push({ method, route, at: Date.now() });
    if (WRITE_METHODS.has(method) && !graphql) this.writes += 1;

    if (this.bucket && !this.take()) {
      this.rateLimited += 1;
      const wait = Math.max(1, Math.ceil((1 - this.bucket.tokens) / this.bucket.perSecond));
      res.setHeader('Retry-After', String(wait));
      res.setHeader('RateLimit-Reset', String(Math.ceil(Date.now() / 1000) + wait));
      return this.json(res, 429, { message: 'Retry later' });
    }

    const fault = this.takeFault(method, route);
    if (fault?.kind === '429' || fault?.kind === '429-bare') {
      this.rateLimited += 1;
      if (fault.kind === '429') res.setHeader('Retry-After', String(fault.retryAfterSeconds ?? 1));
      // API::Helpers::RateLimiter#check_rate_limit!: render_api_error!({ error: … }, 429), no header.
      return this.json(res, 429, { message: { error: 'This endpoint has been requested too many times. Try again later.' } });
    }
    if (fault?.kind === '502') return this.badGateway(res);
    if (fault?.kind === 'hang') {
      this.hanging.add(res);
      return;
    }

    const auth = this.authenticate(req);
    if (auth === 'bad') return this.json(res, 401, { message: '401 Unauthorized' });
    if (auth.viaJobToken && WRITE_METHODS.has(method)) return this.json(res, 401, { message: '401 Unauthorized' });

    let body: Record<string, unknown> = {};
    if (raw.length > 0 && (req.headers['content-type'] ?? '').includes('application/json')) {
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        return this.json(res, 400, { error: 'body is not valid JSON' });
      }
    }
    const ctx: Ctx = {
      req,
      res,
      method,
      segments: rest,
      query: url.searchParams,
      user: auth.user,
      viaJobToken: auth.viaJobToken,
      body,
      route,
    };

    if (fault?.kind === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id": 1, "oops');
      return;
    }
    if (fault?.kind === '502-after-write') {
      // Perform the request into a throwaway response, then lose the answer.
      const sink = { ...ctx, res: discardingResponse() };
      this.route(sink);
      return this.badGateway(res);
    }
    this.route(ctx);
  }

  private route(c: Ctx): void {
    const s = c.segments;
    const m = c.method;
    if (s[0] === 'graphql' && m === 'POST') return this.graphql(c);
    if (m === 'GET' && s.length === 1 && s[0] === 'user') return this.json(c.res, 200, userEntity(c.user));
    if (s[0] === 'groups' && s[2] === 'projects' && s.length === 3 && m === 'GET') return this.groupProjects(c, s[1]!);
    if (s[0] === 'ai' && s[1] === 'duo_workflows' && s[2] === 'workflows' && s.length === 3 && m === 'POST') return this.createWorkflow(c);
    if (s[0] === 'ai' && s[1] === 'duo_workflows' && s[2] === 'workflows' && s.length === 4 && m === 'GET')
      return this.showWorkflow(c, s[3]!);
    if (s[0] !== 'projects' || s.length < 2) return this.json(c.res, 404, { error: '404 Not Found' });

    const project = this.findProject(s[1]!);
    if (!project || this.accessLevel(project, c.user) < 10) return this.json(c.res, 404, { message: '404 Project Not Found' });
    const tail = s.slice(2);
    if (tail.length === 0 && m === 'GET') return this.json(c.res, 200, this.projectEntity(project, true));
    if (tail[0] === 'languages' && m === 'GET') return this.languages(c, project);
    if (tail[0] === 'members' && tail[1] === 'all' && tail.length === 3 && m === 'GET') return this.member(c, project, Number(tail[2]));
    if (tail[0] === 'repository' && tail[1] === 'files' && tail[3] === 'raw' && m === 'GET') return this.rawFile(c, project, tail[2]!);
    if (tail[0] === 'repository' && tail[1] === 'tree' && m === 'GET') return this.tree(c, project);
    if (tail[0] === 'issues') {
      if (tail.length === 1 && m === 'GET') return this.listIssues(c, project);
      if (tail.length === 1 && m === 'POST') return this.createIssue(c, project);
      const issue = this.issuesOf(project.id).find((i) => i.iid === Number(tail[1]));
      if (!issue) return this.json(c.res, 404, { message: '404 Issue Not Found' });
      if (tail.length === 2 && m === 'GET') return this.json(c.res, 200, issueEntity(issue));
      if (tail.length === 2 && m === 'PUT') return this.updateIssue(c, project, issue);
      if (tail[2] === 'notes' && tail.length === 3 && m === 'GET') return this.paginate(c, issue.notes, (n) => n);
      if (tail[2] === 'notes' && tail.length === 3 && m === 'POST') return this.createNote(c, project, issue);
    }
    return this.json(c.res, 404, { error: '404 Not Found' });
  }

  private authenticate(req: IncomingMessage): { user: SimUser | null; viaJobToken: boolean } | 'bad' {
    const pat = header(req, 'private-token');
    const bearer = header(req, 'authorization')?.replace(/^Bearer\s+/i, '');
    const job = header(req, 'job-token');
    const token = pat ?? bearer;
    if (token !== undefined) return this.users[token] ? { user: this.users[token], viaJobToken: false } : 'bad';
    if (job !== undefined) return this.jobTokens.has(job) ? { user: null, viaJobToken: true } : 'bad';
    return 'bad';
  }

  private take(): boolean {
    const b = this.bucket!;
    const now = performance.now();
    b.tokens = Math.min(b.burst, b.tokens + ((now - b.at) / 1000) * b.perSecond);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private takeFault(method: string, route: string): Fault | undefined {
    const i = this.faults.findIndex((f) => f.method === method && `${f.method} ${f.route}` === route);
    if (i < 0) return undefined;
    const fault = this.faults[i]!;
    const left = (fault.times ?? 1) - 1;
    if (left <= 0) this.faults.splice(i, 1);
    else this.faults[i] = { ...fault, times: left };
    return fault;
  }

  private findProject(idOrPath: string): SimProject | undefined {
    if (/^\d+$/.test(idOrPath)) return this.projects.get(Number(idOrPath));
    for (const p of this.projects.values()) if (p.path_with_namespace === idOrPath) return p;
    return undefined;
  }

  /** Membership of `user` (direct, inherited, invited groups): what authorized_projects and members/all see. */
  private memberLevel(p: SimProject, user: SimUser | null): number {
    if (!user) return 10; // job tokens read what their project may read
    return Math.max(p.project_access_level ?? 0, p.group_access_level ?? 0, p.inherited_members?.[user.id] ?? 0);
  }

  /** What the user may do: an administrator may do what an owner may, member or not. */
  private accessLevel(p: SimProject, user: SimUser | null): number {
    return user?.is_admin ? 50 : this.memberLevel(p, user);
  }

  private projectEntity(p: SimProject, withAccess: boolean): Record<string, unknown> {
    const path = p.path_with_namespace;
    const entity: Record<string, unknown> = {
      id: p.id,
      name: path.split('/').pop(),
      path: path.split('/').pop(),
      path_with_namespace: path,
      web_url: `${this.url}/${path}`,
      default_branch: p.empty_repo ? null : (p.default_branch ?? 'main'),
      empty_repo: p.empty_repo ?? false,
      archived: p.archived ?? false,
      issues_enabled: p.issues_enabled ?? true,
      issues_access_level: (p.issues_enabled ?? true) ? 'enabled' : 'disabled',
      repository_access_level: 'enabled',
    };
    if (p.duo_remote_flows_enabled !== undefined) {
      entity.duo_remote_flows_enabled = p.duo_remote_flows_enabled;
      entity.duo_foundational_flows_enabled = p.duo_foundational_flows_enabled ?? true;
    }
    if (withAccess) {
      entity.permissions = {
        project_access: p.project_access_level == null ? null : { access_level: p.project_access_level, notification_level: 3 },
        group_access: p.group_access_level == null ? null : { access_level: p.group_access_level, notification_level: 3 },
      };
    }
    return entity;
  }

  private languages(c: Ctx, p: SimProject): void {
    if ((p.languages_pending_calls ?? 0) > 0) {
      p.languages_pending_calls! -= 1;
      return this.json(c.res, 200, {});
    }
    return this.json(c.res, 200, p.languages ?? {});
  }

  private member(c: Ctx, p: SimProject, userId: number): void {
    const level = Math.max(
      p.inherited_members?.[userId] ?? 0,
      c.user?.id === userId ? Math.max(p.project_access_level ?? 0, p.group_access_level ?? 0) : 0,
    );
    if (level === 0) return this.json(c.res, 404, { message: '404 Not found' });
    const user = Object.values(this.users).find((u) => u.id === userId);
    return this.json(c.res, 200, { id: userId, username: user?.username ?? `user${userId}`, state: 'active', access_level: level });
  }

  private rawFile(c: Ctx, p: SimProject, path: string): void {
    const content = p.empty_repo ? undefined : p.files?.[path];
    if (content === undefined) return this.json(c.res, 404, { message: '404 File Not Found' });
    c.res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    c.res.end(content);
  }

  private tree(c: Ctx, p: SimProject): void {
    const dir = c.query.get('path') ?? '';
    const entries = Object.keys(p.empty_repo ? {} : (p.files ?? {}))
      .filter((f) => (dir ? f.startsWith(`${dir}/`) : true))
      .map((f) => (dir ? f.slice(dir.length + 1) : f))
      .filter((f) => !f.includes('/'))
      .map((name, i) => ({ id: `blob${i}`, name, type: 'blob', path: dir ? `${dir}/${name}` : name, mode: '100644' }));
    return this.paginate(c, entries, (e) => e);
  }

  private listIssues(c: Ctx, p: SimProject): void {
    const labels = (c.query.get('labels') ?? '').split(',').filter(Boolean);
    const state = c.query.get('state') ?? 'all';
    const search = c.query.get('search');
    const found = this.issuesOf(p.id).filter(
      (i) =>
        labels.every((l) => i.labels.includes(l)) &&
        (state === 'all' || i.state === state) &&
        (!search || i.title.includes(search) || i.description.includes(search)),
    );
    return this.paginate(c, found.slice().reverse(), issueEntity);
  }

  private createIssue(c: Ctx, p: SimProject): void {
    if (!(p.issues_enabled ?? true)) return this.json(c.res, 403, { message: '403 Forbidden' });
    if (this.accessLevel(p, c.user) < 15) return this.json(c.res, 403, { message: '403 Forbidden' });
    const title = c.body.title;
    if (typeof title !== 'string' || title === '') return this.json(c.res, 400, { error: 'title is missing' });
    const list = this.issuesOf(p.id);
    const iid = list.reduce((max, i) => Math.max(max, i.iid), 0) + 1;
    const issue: SimIssue = {
      id: this.nextId++,
      iid,
      project_id: p.id,
      title,
      description: typeof c.body.description === 'string' ? c.body.description : '',
      state: 'opened',
      labels:
        typeof c.body.labels === 'string'
          ? c.body.labels
              .split(',')
              .map((l) => l.trim())
              .filter(Boolean)
          : [],
      web_url: `${this.url}/${p.path_with_namespace}/-/work_items/${iid}`,
      author: { id: c.user!.id, username: c.user!.username },
      notes: [],
    };
    list.push(issue);
    return this.json(c.res, 201, issueEntity(issue));
  }

  private updateIssue(c: Ctx, _p: SimProject, issue: SimIssue): void {
    const who = { id: c.user!.id, username: c.user!.username };
    if (c.body.state_event === 'close' && issue.state === 'opened') {
      issue.state = 'closed';
      issue.closed_by = who;
      issue.notes.push({ id: this.nextId++, body: 'closed', system: true, author: who });
    }
    if (c.body.state_event === 'reopen' && issue.state === 'closed') {
      issue.state = 'opened';
      issue.closed_by = null;
      issue.notes.push({ id: this.nextId++, body: 'reopened', system: true, author: who });
    }
    return this.json(c.res, 200, issueEntity(issue));
  }

  private createNote(c: Ctx, _p: SimProject, issue: SimIssue): void {
    if (typeof c.body.body !== 'string' || c.body.body === '') return this.json(c.res, 400, { error: 'body is missing' });
    const note: SimNote = { id: this.nextId++, body: c.body.body, system: false, author: { id: c.user!.id, username: c.user!.username } };
    issue.notes.push(note);
    return this.json(c.res, 201, note);
  }

  // API::Ai::DuoWorkflows::Workflows `post` (no ai_catalog_item_consumer_id), CreateWorkflowService,
  // StartWorkflowService: docs/onboarding.md#simulator-behaviours.
  private createWorkflow(c: Ctx): void {
    const b = c.body;
    if (typeof b.project_id !== 'string' && typeof b.project_id !== 'number')
      return this.json(c.res, 400, { message: 'No default namespace found' });
    const project = this.findProject(String(b.project_id));
    if (!project || this.accessLevel(project, c.user) < 10)
      return this.json(c.res, 403, { message: 'Access to the container is not allowed' });
    // resolve_foundational_flow_service_account!: before the workflow exists.
    if (b.workflow_definition === 'developer/v1') {
      if (project.developer_flow_enabled === false)
        return this.json(c.res, 403, { message: 'No item consumer found for the root namespace.' });
      if (project.service_account === false) {
        return this.json(c.res, 403, { message: 'Could not find a valid service account for this agent/flow.' });
      }
    }
    // CreateWorkflowService#check_duo_workflow_access: :create_duo_workflow_for_ci.
    if (!this.duoStatus(project, c.user).create_duo_workflow_for_ci_allowed) {
      return this.json(c.res, 403, { message: 'forbidden to access duo workflow' });
    }
    const privileges = Array.isArray(b.agent_privileges) ? (b.agent_privileges as number[]) : [1, 2, 3, 4, 5, 6];
    const preApproved = Array.isArray(b.pre_approved_agent_privileges) ? (b.pre_approved_agent_privileges as number[]) : [];
    if (!preApproved.every((p) => privileges.includes(p))) {
      return this.json(c.res, 400, { message: { pre_approved_agent_privileges: ['must be a subset of agent_privileges'] } });
    }
    let issue: SimIssue | undefined;
    if (b.issue_id !== undefined) {
      // create_workflow_params: project.issues.find_by_iid!.
      issue = this.issuesOf(project.id).find((i) => i.iid === Number(b.issue_id));
      if (!issue) return this.json(c.res, 404, { message: '404 Issue Not Found' });
    }
    // As GitLab does: the workflow row (and the issue's system note) exist before the start step can fail.
    const workflow: SimWorkflow = {
      id: this.nextId++,
      project_id: project.id,
      user_id: c.user!.id,
      issue_iid: issue?.iid ?? null,
      body: b,
      status: 'created',
    };
    this.workflows.push(workflow);
    if (issue) {
      const link = `[${workflow.id}](${this.url}/${project.path_with_namespace}/-/automate/agent-sessions/${workflow.id})`;
      issue.notes.push({
        id: this.nextId++,
        body: `started session ${link} triggered by @${c.user!.username}`,
        system: true,
        author: { id: 99, username: 'duo-developer' },
      });
    }
    let workload: { id: number | null; message: string | null } = { id: null, message: null };
    if (b.start_workflow === true) {
      if (!project.duo_remote_flows_enabled) return this.json(c.res, 403, { message: 'Can not execute workflow in CI' });
      let outcome = project.workflow_outcome ?? 'ok';
      if (outcome !== 'ok' && project.workflow_outcome_times !== undefined) {
        if (project.workflow_outcome_times <= 0) outcome = 'ok';
        else project.workflow_outcome_times -= 1;
      }
      // The endpoint's reason → status mapping: unprocessable_entity/workload_failure → 422,
      // feature_unavailable/invalid_service_account → 403, anything else → 500 (render_api_error!).
      if (outcome === 'source-ref-missing') return this.json(c.res, 500, { message: 'Source ref not found' });
      if (outcome === 'workflow-workload-failure') return this.json(c.res, 500, { message: 'Workload has already been taken' });
      if (outcome === 'workload-failure')
        return this.json(c.res, 422, { message: 'Pipeline creation failed: no runner matches the gitlab--duo tag' });
      workload = { id: this.nextId++, message: null };
      // Upstream the executor moves it to running once its CI job starts; the simulator has no executor.
      workflow.status = 'running';
    }
    return this.json(c.res, 201, { ...this.workflowEntity(workflow, privileges, preApproved), workload });
  }

  private workflowEntity(w: SimWorkflow, privileges?: number[], preApproved?: number[]): Record<string, unknown> {
    const b = w.body;
    return {
      id: w.id,
      project_id: w.project_id,
      namespace_id: null,
      agent_privileges: privileges ?? b.agent_privileges ?? [1, 2, 3, 4, 5, 6],
      pre_approved_agent_privileges: preApproved ?? b.pre_approved_agent_privileges ?? [],
      workflow_definition: b.workflow_definition ?? null,
      status: w.status,
      summary: null,
      allow_agent_to_request_user: true,
      image: null,
      environment: b.environment ?? null,
      ai_catalog_item_version_id: null,
      workload: null,
      mcp_enabled: false,
      gitlab_url: this.url,
    };
  }

  // WorkflowsInternal `get ':id'`: Workflow.for_user_with_id!(current_user.id, id), else 404.
  private showWorkflow(c: Ctx, id: string): void {
    const w = this.workflows.find((x) => String(x.id) === id);
    if (!w || w.user_id !== c.user?.id) return this.json(c.res, 404, { message: '404 Not found' });
    return this.json(c.res, 200, this.workflowEntity(w));
  }

  /** Ai::DuoWorkflows::EnablementCheckService#execute for this project and user. */
  duoStatus(
    p: SimProject,
    user: SimUser | null,
  ): {
    enabled: boolean;
    create_duo_workflow_for_ci_allowed: boolean;
    checks: { name: string; value: boolean; message: string }[];
    remote_flows_enabled: boolean | null;
    foundational_flows_enabled: boolean | null;
    enabled_foundational_flows: string[];
  } {
    const duoFeatures = p.duo_features_enabled ?? true;
    // The instance licence (StageCheck :duo_workflow) shows in REST as the duo_remote_flows_enabled key being sent.
    const licensed = p.duo_remote_flows_enabled !== undefined;
    const available = licensed && (p.duo_agent_platform_enabled ?? true);
    const developer = this.accessLevel(p, user) >= (p.duo_min_access_level ?? 30);
    const seat = p.duo_seat ?? true;
    return {
      enabled: available,
      // :create_duo_workflow_for_ci needs the platform, Duo features, the stage check, the seat and the role.
      create_duo_workflow_for_ci_allowed: available && duoFeatures && developer && seat,
      checks: [
        { name: 'feature_flag', value: true, message: 'duo_workflow feature flag must be enabled.' },
        { name: 'duo_features_enabled', value: duoFeatures, message: 'Project must have GitLab Duo features enabled.' },
        { name: 'developer_access', value: developer, message: 'User must have permission to use Duo Workflows in the project.' },
        {
          name: 'feature_available',
          value: licensed && seat,
          message: 'duo_workflow licensed feature must be available for the project and experimental features must be enabled.',
        },
      ],
      remote_flows_enabled: p.duo_remote_flows_enabled ?? null,
      foundational_flows_enabled: p.duo_foundational_flows_enabled ?? (p.duo_remote_flows_enabled === undefined ? null : true),
      enabled_foundational_flows: (p.developer_flow_enabled ?? true) ? ['developer/v1'] : [],
    };
  }

  // POST /api/graphql for the one query shape the CLI sends: project(fullPath:) { duoFeaturesEnabled
  // duoWorkflowStatusCheck { … } }. Not a GraphQL engine: the requested fields are read off the query text.
  private graphql(c: Ctx): void {
    const query = typeof c.body.query === 'string' ? c.body.query : '';
    const variables = (typeof c.body.variables === 'object' && c.body.variables !== null ? c.body.variables : {}) as Record<
      string,
      unknown
    >;
    for (const field of this.options.graphqlUnknownFields ?? []) {
      if (new RegExp(`\\b${field}\\b`).test(query)) {
        const type = field === 'aiCatalogConfiguredItems' ? 'Query' : 'DuoWorkflowEnablement';
        return this.json(c.res, 200, { errors: [{ message: `Field '${field}' doesn't exist on type '${type}'` }] });
      }
    }
    const fullPath = typeof variables.fullPath === 'string' ? variables.fullPath : '';
    const p = [...this.projects.values()].find((x) => x.path_with_namespace === fullPath);
    const wants = (f: string): boolean => new RegExp(`\\b${f}\\b`).test(query);
    const data: Record<string, unknown> = {};
    if (wants('aiCatalogConfiguredItems'))
      data.aiCatalogConfiguredItems = { nodes: this.developerFlowConsumers(variables.projectId, c.user) };
    if (!p || this.accessLevel(p, c.user) < 10) return this.json(c.res, 200, { data: { ...data, project: null } });
    const st = this.duoStatus(p, c.user);
    const check: Record<string, unknown> = {};
    if (wants('enabled')) check.enabled = st.enabled;
    if (wants('createDuoWorkflowForCiAllowed')) check.createDuoWorkflowForCiAllowed = st.create_duo_workflow_for_ci_allowed;
    if (wants('remoteFlowsEnabled')) check.remoteFlowsEnabled = st.remote_flows_enabled;
    if (wants('foundationalFlowsEnabled')) check.foundationalFlowsEnabled = st.foundational_flows_enabled;
    if (wants('enabledFoundationalFlows')) check.enabledFoundationalFlows = st.enabled_foundational_flows;
    if (wants('checks')) check.checks = st.checks;
    const project: Record<string, unknown> = {};
    if (wants('duoFeaturesEnabled')) project.duoFeaturesEnabled = p.duo_features_enabled ?? true;
    if (wants('duoWorkflowStatusCheck')) project.duoWorkflowStatusCheck = check;
    return this.json(c.res, 200, { data: { ...data, project } });
  }

  // aiCatalogConfiguredItems(projectId:, itemTypes: [FLOW], foundationalFlowReference: "developer/v1"): the project's
  // consumer of the flow, whose service account is its parent (group) consumer's, as ItemConsumerType exposes them.
  private developerFlowConsumers(projectGid: unknown, user: SimUser | null): unknown[] {
    const id = typeof projectGid === 'string' ? /^gid:\/\/gitlab\/Project\/(\d+)$/.exec(projectGid)?.[1] : undefined;
    const p = id === undefined ? undefined : this.projects.get(Number(id));
    if (!p || this.accessLevel(p, user) < 10 || p.developer_flow_enabled === false) return [];
    const account = p.service_account === false ? null : { id: 'gid://gitlab/User/99' };
    return [
      {
        id: `gid://gitlab/Ai::Catalog::ItemConsumer/${p.id}`,
        project: { id: `gid://gitlab/Project/${p.id}` },
        serviceAccount: null,
        parentItemConsumer: { serviceAccount: account },
      },
    ];
  }

  private groupProjects(c: Ctx, groupRef: string): void {
    const group = /^\d+$/.test(groupRef)
      ? this.groups.get(Number(groupRef))
      : [...this.groups.values()].find((g) => g.full_path === groupRef);
    if (!group) return this.json(c.res, 404, { message: '404 Group Not Found' });
    const groupIds = new Set([group.id]);
    if (c.query.get('include_subgroups') === 'true') {
      let grew = true;
      while (grew) {
        grew = false;
        for (const g of this.groups.values()) {
          if (g.parent_id !== undefined && groupIds.has(g.parent_id) && !groupIds.has(g.id)) {
            groupIds.add(g.id);
            grew = true;
          }
        }
      }
    }
    const minAccess = c.query.get('min_access_level');
    const archived = c.query.get('archived');
    const withIssues = c.query.get('with_issues_enabled') === 'true';
    // with_shared defaults to true (lib/api/groups.rb): projects shared into the group are listed with its own.
    const withShared = c.query.get('with_shared') !== 'false';
    const list: SimProject[] = [];
    for (const p of this.projects.values()) {
      const own = p.group_id !== undefined && groupIds.has(p.group_id);
      const shared = withShared && (p.shared_with_group_ids ?? []).some((g) => groupIds.has(g));
      if (!own && !shared) continue;
      if (archived !== null && String(p.archived ?? false) !== archived) continue;
      if (withIssues && !(p.issues_enabled ?? true)) continue;
      // min_access_level: authorized_projects, i.e. memberships only; an administrator's reach does not count.
      if (minAccess !== null && this.memberLevel(p, c.user) < Number(minAccess)) continue;
      if (this.accessLevel(p, c.user) < 10) continue;
      list.push(p);
    }
    const simple = c.query.get('simple') === 'true';
    return this.paginate(c, list, (p) => {
      const e = this.projectEntity(p, false);
      return simple
        ? {
            id: e.id,
            name: e.name,
            path: e.path,
            path_with_namespace: e.path_with_namespace,
            web_url: e.web_url,
            default_branch: e.default_branch,
          }
        : e;
    });
  }

  // Offset pagination with GitLab's headers (docs/onboarding.md#simulator-behaviours).
  private paginate<T>(c: Ctx, all: T[], shape: (t: T) => unknown): void {
    const perPage = Math.min(100, Math.max(1, Number(c.query.get('per_page') ?? 20) || 20));
    const page = Math.max(1, Number(c.query.get('page') ?? 1) || 1);
    const totalPages = Math.max(1, Math.ceil(all.length / perPage));
    const slice = all.slice((page - 1) * perPage, page * perPage);
    const base = new URL(`${this.url}/api/v4/${c.segments.map(encodeURIComponent).join('/')}`);
    c.query.forEach((v, k) => base.searchParams.set(k, v));
    base.searchParams.set('per_page', String(perPage));
    const link = (p: number, rel: string): string => {
      base.searchParams.set('page', String(p));
      return `<${base.toString()}>; rel="${rel}"`;
    };
    const links: string[] = [];
    if (page > 1) links.push(link(page - 1, 'prev'));
    if (page < totalPages) links.push(link(page + 1, 'next'));
    links.push(link(1, 'first'), link(totalPages, 'last'));
    c.res.setHeader('Link', links.join(', '));
    c.res.setHeader('X-Page', String(page));
    c.res.setHeader('X-Per-Page', String(perPage));
    c.res.setHeader('X-Next-Page', page < totalPages ? String(page + 1) : '');
    c.res.setHeader('X-Prev-Page', page > 1 ? String(page - 1) : '');
    c.res.setHeader('X-Total', String(all.length));
    c.res.setHeader('X-Total-Pages', String(totalPages));
    return this.json(c.res, 200, slice.map(shape));
  }

  private badGateway(res: ServerResponse): void {
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end('<html><body><h1>502 Bad Gateway</h1></body></html>');
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }
}

// GET /user: API::Entities::UserWithAdmin (with is_admin) for administrators, UserPublic otherwise.
function userEntity(u: SimUser | null): Record<string, unknown> | null {
  if (!u) return null;
  return u.is_admin ? { id: u.id, username: u.username, is_admin: true } : { id: u.id, username: u.username };
}

function issueEntity(i: SimIssue): Record<string, unknown> {
  return {
    id: i.id,
    iid: i.iid,
    project_id: i.project_id,
    title: i.title,
    description: i.description,
    state: i.state,
    labels: i.labels,
    web_url: i.web_url,
    author: i.author,
    closed_by: i.closed_by ?? null,
  };
}

// 'projects/acme%2Fshop/issues/3/notes' → 'projects/:id/issues/:iid/notes'
function routePattern(segments: string[]): string {
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const prev = segments[i - 1];
    if (prev === 'projects' || prev === 'groups') out.push(':id');
    else if (prev === 'issues') out.push(':iid');
    else if (prev === 'workflows' && /^\d+$/.test(segments[i]!)) out.push(':id');
    else if (prev === 'files') out.push(':file_path');
    else if (prev === 'all' && segments[i - 2] === 'members') out.push(':user_id');
    else out.push(segments[i]!);
  }
  return out.join('/');
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function discardingResponse(): ServerResponse {
  const noop = (): void => {};
  return { setHeader: noop, writeHead: noop, end: noop, headersSent: false } as unknown as ServerResponse;
}
