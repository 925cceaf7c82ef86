// "Already instrumented": does the primary language's manifest already depend
// on OpenTelemetry? Pure over file contents; the caller fetches the files.
import type { TemplateId } from './languages/choose.js';

/**
 * Manifest paths per template, at the repository root. A leading '*' means
 * "any root file with this suffix" (the caller lists the tree for those).
 */
export const MANIFESTS: Record<TemplateId, readonly string[]> = {
  ruby: ['Gemfile'],
  javascript: ['package.json'],
  python: ['requirements.txt', 'pyproject.toml'],
  go: ['go.mod'],
  java: ['pom.xml', 'build.gradle', 'build.gradle.kts'],
  csharp: ['*.csproj'],
  php: ['composer.json'],
  generic: [],
};

function jsonDependencyKeys(content: string, sections: string[]): string[] | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return [];
  const keys: string[] = [];
  for (const s of sections) {
    const deps = (parsed as Record<string, unknown>)[s];
    if (typeof deps === 'object' && deps !== null) keys.push(...Object.keys(deps));
  }
  return keys;
}

function withoutComments(content: string, marker: string): string {
  return content
    .split('\n')
    .map((line) => {
      const i = line.indexOf(marker);
      return i >= 0 ? line.slice(0, i) : line;
    })
    .join('\n');
}

/** Whether the manifest at `path` declares an OpenTelemetry dependency. */
export function dependsOnOpenTelemetry(path: string, content: string): boolean {
  const name = path.split('/').pop() ?? path;
  switch (true) {
    case name === 'package.json': {
      const keys = jsonDependencyKeys(content, ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies']);
      // Unparseable: fall back to the text, rather than call a broken manifest "not instrumented".
      return keys ? keys.some((k) => k.startsWith('@opentelemetry/')) : /"@opentelemetry\//.test(content);
    }
    case name === 'composer.json': {
      const keys = jsonDependencyKeys(content, ['require', 'require-dev']);
      return keys ? keys.some((k) => k.startsWith('open-telemetry/')) : /"open-telemetry\//.test(content);
    }
    case name === 'Gemfile':
      return /^\s*gem\s+['"]opentelemetry-/m.test(withoutComments(content, '#'));
    case name === 'requirements.txt':
      return /^\s*opentelemetry[-_]/im.test(withoutComments(content, '#'));
    case name === 'pyproject.toml':
      return /["'\s=]opentelemetry[-_][a-z0-9_-]+/i.test(withoutComments(content, '#'));
    case name === 'go.mod':
      return /^\s*(require\s+)?go\.opentelemetry\.io\/(otel|contrib)/m.test(withoutComments(content, '//'));
    case name === 'pom.xml':
      return /<groupId>\s*io\.opentelemetry(\.[\w.]+)?\s*<\/groupId>/.test(content.replace(/<!--[\s\S]*?-->/g, ''));
    case name === 'build.gradle' || name === 'build.gradle.kts':
      return /["']io\.opentelemetry[\w.]*:/.test(withoutComments(content, '//'));
    case name.endsWith('.csproj'):
      return /<PackageReference\s+Include\s*=\s*"OpenTelemetry[\w.]*"/i.test(content.replace(/<!--[\s\S]*?-->/g, ''));
    default:
      return false;
  }
}
