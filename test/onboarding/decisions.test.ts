// The pure parts of onboarding: eligibility, language choice, templates,
// manifest checks, wire parsing, Retry-After, session detection, reports, argv.
import t from 'tap';
import { accessFromPermissions, checkAccess, checkLanguages, checkProject } from '../../src/onboarding/eligibility.js';
import { dependsOnOpenTelemetry } from '../../src/onboarding/instrumented.js';
import { ISSUE_MARKER, primaryLanguage, renderDescription, TEMPLATE_IDS, templateFor } from '../../src/onboarding/languages/choose.js';
import { parseLanguages, parseProject, parseWorkflow, type ProjectWire } from '../../src/onboarding/gitlab-wire.js';
import { retryDelayMs } from '../../src/onboarding/gitlab-client.js';
import { isOurIssue, startedSession } from '../../src/onboarding/onboard.js';
import { addToSummary, emptySummary, markdownPath, markdownReport, summaryTable } from '../../src/onboarding/report.js';
import { parseOnboardArgs } from '../../src/onboarding/command.js';

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

t.test('primary language and template choice', async (t) => {
  t.equal(primaryLanguage({ HTML: 7.9, Ruby: 66.7, JavaScript: 22.9 }), 'Ruby', 'highest share, not key order');
  t.equal(primaryLanguage({ Python: 50, Go: 50 }), 'Go', 'ties broken by name');
  t.equal(primaryLanguage({}), null);
  t.equal(templateFor('TypeScript'), 'javascript');
  t.equal(templateFor('C#'), 'csharp');
  t.equal(templateFor('Kotlin'), 'java');
  t.equal(templateFor('COBOL'), 'generic');
  t.equal(templateFor(null), 'generic');
});

t.test('every template covers what the issue must ask for', async (t) => {
  for (const id of TEMPLATE_IDS) {
    const text = renderDescription(id, { language: 'Lang', projectPath: 'acme/shop' });
    t.test(id, async (t) => {
      t.match(text, /^# Add OpenTelemetry instrumentation/);
      t.match(text, /acme\/shop/);
      t.notMatch(text, /\{\{/, 'no unfilled placeholder');
      for (const must of [
        'OTEL_EXPORTER_OTLP_ENDPOINT',
        'OTEL_SERVICE_NAME',
        'gitlab.project.id',
        'CI_PROJECT_ID',
        'service.version',
        'CI_COMMIT_SHA',
        'deployment.environment.name',
        'CI_ENVIRONMENT_NAME',
        'never hard-code',
        'merge request must contain',
        'lock file',
      ]) {
        t.ok(text.includes(must), `mentions ${must}`);
      }
      t.match(text, /SDK|sdk/);
      t.match(text, /OTLP|otlp/);
      t.match(text, /auto-instrumentation/i);
      t.ok(text.trimEnd().endsWith(ISSUE_MARKER), 'ends with the hidden marker');
    });
  }
  t.match(
    renderDescription('ruby', { language: 'Ruby', projectPath: 'x' }),
    /opentelemetry-instrumentation-rails[\s\S]*config\/initializers\/opentelemetry\.rb/,
  );
  t.match(
    renderDescription('javascript', { language: 'JavaScript', projectPath: 'x' }),
    /@opentelemetry\/sdk-node[\s\S]*tracing\.js[\s\S]*--require/,
  );
  t.match(renderDescription('python', { language: 'Python', projectPath: 'x' }), /opentelemetry-sdk[\s\S]*otel_config\.py/);
});

t.test('manifests that depend on OpenTelemetry', async (t) => {
  const yes: [string, string][] = [
    ['package.json', '{"devDependencies":{"@opentelemetry/sdk-node":"^0.50"}}'],
    ['Gemfile', "source 'https://rubygems.org'\ngem 'opentelemetry-sdk'\n"],
    ['requirements.txt', 'flask==3.0\nOpenTelemetry-SDK==1.27\n'],
    ['pyproject.toml', '[project]\ndependencies = ["opentelemetry-api>=1.27", "flask"]\n'],
    ['go.mod', 'module x\nrequire (\n\tgo.opentelemetry.io/otel v1.30.0\n)\n'],
    ['pom.xml', '<dependency><groupId>io.opentelemetry</groupId><artifactId>opentelemetry-api</artifactId></dependency>'],
    ['build.gradle.kts', 'implementation("io.opentelemetry:opentelemetry-api:1.42.0")'],
    ['src/App.csproj', '<PackageReference Include="OpenTelemetry" Version="1.9.0" />'],
    ['composer.json', '{"require":{"open-telemetry/sdk":"^1.0"}}'],
  ];
  const no: [string, string][] = [
    ['package.json', '{"dependencies":{"express":"^4"},"description":"@opentelemetry/ someday"}'],
    ['Gemfile', "# gem 'opentelemetry-sdk'\ngem 'rails'\n"],
    ['requirements.txt', '# opentelemetry-sdk later\nflask\n'],
    ['go.mod', 'module x\n// go.opentelemetry.io/otel later\n'],
    ['pom.xml', '<!-- <groupId>io.opentelemetry</groupId> --><groupId>org.springframework</groupId>'],
    ['App.csproj', '<PackageReference Include="Serilog" />'],
    ['composer.json', '{"require":{"laravel/framework":"^11"}}'],
    ['README.md', 'opentelemetry'],
  ];
  for (const [path, content] of yes) t.ok(dependsOnOpenTelemetry(path, content), `${path}: instrumented`);
  for (const [path, content] of no) t.notOk(dependsOnOpenTelemetry(path, content), `${path}: not instrumented`);
  t.ok(dependsOnOpenTelemetry('package.json', '{"dependencies":{"@opentelemetry/api":'), 'broken JSON: falls back to the text');
});

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
});

t.test('Retry-After and RateLimit-Reset', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  t.equal(retryDelayMs(new Headers({ 'retry-after': '7' }), now), 7000);
  t.equal(retryDelayMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }), now), 5000);
  t.equal(retryDelayMs(new Headers({ 'ratelimit-reset': String(now / 1000 + 3) }), now), 3000);
  t.equal(retryDelayMs(new Headers({}), now), undefined);
});

t.test('session notes and our issues', async (t) => {
  const link = (id: number): string => `[${id}](https://g/a/b/-/automate/agent-sessions/${id})`;
  t.equal(startedSession([{ body: `started session ${link(12)} triggered by @me`, system: true }]), 12);
  t.equal(startedSession([{ body: `started session ${link(12)}`, system: false }]), null, "a user comment is not GitLab's note");
  t.equal(startedSession([{ body: `session ${link(12)} failed`, system: true }]), null);
  const issue = { iid: 1, web_url: 'u', description: `x ${ISSUE_MARKER}`, state: 'opened', labels: ['ours'] };
  t.ok(isOurIssue(issue, 'ours'));
  t.notOk(isOurIssue({ ...issue, labels: ['other'] }, 'ours'));
  t.notOk(isOurIssue({ ...issue, description: 'x' }, 'ours'));
});

t.test('summary table and Markdown report', async (t) => {
  const s = emptySummary();
  addToSummary(s, { project: 'a/b', status: 'created', issue: { iid: 1, web_url: 'https://g/a/b/-/work_items/1' }, workflow: { id: 9 } });
  addToSummary(s, { project: 'a/c', status: 'skipped', code: 'ARCHIVED', reason: 'archived' });
  addToSummary(s, { project: 'a/d|x', status: 'failed', code: 'FORBIDDEN', reason: 'nope' });
  t.match(summaryTable(s), /created\s+1[\s\S]*skipped\s+1[\s\S]*failed\s+1[\s\S]*total\s+3[\s\S]*skipped: ARCHIVED\s+1/);
  const md = markdownReport(s, [
    { project: 'a/b', status: 'created', issue: { iid: 1, web_url: 'https://g/a/b/-/work_items/1' }, workflow: { id: 9 } },
    { project: 'a/d|x', status: 'failed', reason: 'nope' },
  ]);
  t.match(md, /\| created \| 1 \|/);
  t.match(md, /\[#1\]\(https:\/\/g\/a\/b\/-\/work_items\/1\)/);
  t.match(md, /a\/d\\\|x/, 'pipes escaped');
  t.equal(markdownPath('out/report.json'), 'out/report.md');
  t.equal(markdownPath('report'), 'report.md');
});

t.test('argument and environment parsing', async (t) => {
  const env = { GITLAB_URL: 'https://gitlab.example.com/', GITLAB_TOKEN: 'x' };
  const c = parseOnboardArgs(['--group', 'acme', '--include-subgroups', '--label', 'otel', '--label', 'duo', '--concurrency', '2'], env);
  t.match(c, {
    spec: { kind: 'group', ref: 'acme', includeSubgroups: true },
    labels: ['otel', 'duo'],
    concurrency: 2,
    url: 'https://gitlab.example.com',
  });
  t.match(parseOnboardArgs(['--project', '1'], { CI_API_V4_URL: 'https://g.example/api/v4', GITLAB_TOKEN: 'x' }), {
    url: 'https://g.example',
  });
  t.equal(parseOnboardArgs(['--help'], {}), 'help');
  t.throws(() => parseOnboardArgs(['--project', '1', '--concurrency', '0'], env), { code: 'USAGE' });
  t.throws(() => parseOnboardArgs(['--project', '1', '--bogus'], env), { code: 'USAGE' });
  t.throws(() => parseOnboardArgs(['--include-subgroups', '--project', '1'], env), { code: 'USAGE' });
  t.throws(() => parseOnboardArgs(['--project', '1', '--label', 'a,b'], env), { code: 'USAGE' });
  t.throws(() => parseOnboardArgs(['--project', '1'], { GITLAB_TOKEN: 'x' }), { code: 'CONFIG_MISSING_URL' });
  t.throws(() => parseOnboardArgs(['--project', '1'], { GITLAB_URL: 'not a url', GITLAB_TOKEN: 'x' }), { code: 'CONFIG_BAD_URL' });
  t.throws(() => parseOnboardArgs(['--project', '1'], { GITLAB_URL: 'https://g' }), { code: 'CONFIG_MISSING_TOKEN' });
  t.throws(() => parseOnboardArgs(['--project', '1'], { GITLAB_URL: 'https://g', CI_JOB_TOKEN: 'j' }), { code: 'CONFIG_JOB_TOKEN_ONLY' });
});
