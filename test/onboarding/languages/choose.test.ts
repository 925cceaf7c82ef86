// Language and template choice, and the rendered issue descriptions: what
// every template must ask for, and that ours ask for all GitLab's own goal
// templates ask for.
import t from 'tap';
import { ISSUE_MARKER, primaryLanguage, renderDescription, TEMPLATE_IDS, templateFor } from '../../../src/onboarding/languages/choose.js';

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
      t.match(text, /`acme\/shop`/);
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

// Gitlab::Duo::Otel::GoalTemplates (ee/lib/gitlab/duo/otel/goal_templates.rb): what GitLab's own service asks for,
// per language. Ours must ask for all of it (docs/onboarding.md#templates-against-gitlabs).
const GITLAB_GOALS: [string, string, string[]][] = [
  [
    'ruby',
    'Ruby',
    [
      'opentelemetry-sdk',
      'opentelemetry-exporter-otlp',
      'opentelemetry-instrumentation-rails',
      'opentelemetry-instrumentation-rack',
      'bundle install',
      'Gemfile.lock',
      'config/initializers/opentelemetry.rb',
      'use_all',
    ],
  ],
  [
    'javascript',
    'JavaScript',
    [
      '@opentelemetry/sdk-node',
      '@opentelemetry/auto-instrumentations-node',
      '@opentelemetry/exporter-trace-otlp-http',
      'npm install',
      'package-lock.json',
      'tracing.js',
      '--require',
      'getNodeAutoInstrumentations()',
      'node --require ./tracing.js app.js',
    ],
  ],
  [
    'python',
    'Python',
    [
      'opentelemetry-sdk',
      'opentelemetry-exporter-otlp',
      'opentelemetry-instrumentation',
      'requirements.txt',
      'pip install -r requirements.txt',
      'otel_config.py',
      'TracerProvider',
      'BatchSpanProcessor',
      'OTLPSpanExporter',
    ],
  ],
];
const GITLAB_EVERY_GOAL = [
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'http://localhost:4318',
  'OTEL_SERVICE_NAME',
  'auto-instrumentation',
  'never hard-code',
  'MR description',
  'how to set the variables',
  'local OpenTelemetry Collector for testing',
];

t.test("our templates are a superset of GitLab's own goal templates", async (t) => {
  for (const [id, language, musts] of GITLAB_GOALS) {
    const text = renderDescription(id as 'ruby', { language, projectPath: 'acme/shop' });
    for (const must of musts) t.ok(text.includes(must), `${id}: ${must}`);
  }
  for (const id of TEMPLATE_IDS) {
    const text = renderDescription(id, { language: 'Lang', projectPath: 'acme/shop' });
    for (const must of GITLAB_EVERY_GOAL) t.ok(text.includes(must), `${id}: ${must}`);
  }
  t.equal(templateFor('TypeScript'), 'javascript', 'TypeScript shares the JavaScript template, as in GitLab');
});
