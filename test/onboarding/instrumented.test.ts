// Manifests that already depend on OpenTelemetry (so the project is skipped),
// and look-alikes in comments or descriptions that do not.
import t from 'tap';
import { dependsOnOpenTelemetry } from '../../src/onboarding/instrumented.js';

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
