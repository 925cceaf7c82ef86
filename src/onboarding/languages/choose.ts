// Which instrumentation template a project gets, and the issue description it
// renders to. The templates are Markdown files beside this module (copied into
// dist/ by the build), so they can be edited without touching code.
import { readFileSync } from 'node:fs';
import { OnboardingError } from '../errors.js';
import type { LanguagesWire } from '../gitlab-wire.js';

export type TemplateId = 'ruby' | 'javascript' | 'python' | 'go' | 'java' | 'csharp' | 'php' | 'generic';

export const TEMPLATE_IDS: readonly TemplateId[] = ['ruby', 'javascript', 'python', 'go', 'java', 'csharp', 'php', 'generic'];

// Linguist names, as GET /projects/:id/languages reports them.
const BY_LANGUAGE: Record<string, TemplateId> = {
  ruby: 'ruby',
  javascript: 'javascript',
  typescript: 'javascript',
  python: 'python',
  go: 'go',
  java: 'java',
  kotlin: 'java',
  'c#': 'csharp',
  php: 'php',
};

/** Version of the issue text; bump it when the templates change. */
export const TEMPLATE_VERSION = 1;

/** The hidden marker that identifies our issues (with our label). Never rendered by GitLab. */
export const ISSUE_MARKER = `<!-- gitlab-otel:onboarding v${TEMPLATE_VERSION} -->`;

const ANY_MARKER = /<!-- gitlab-otel:onboarding v\d+ -->/g;

export const ISSUE_TITLE = 'Add OpenTelemetry instrumentation';

/**
 * The language with the highest share, as GitLab's own rule takes
 * `repository_languages.first` (share DESC). Key order is not trusted; equal
 * shares are broken by name so the choice is stable.
 */
export function primaryLanguage(languages: LanguagesWire): string | null {
  let best: [string, number] | null = null;
  for (const [name, share] of Object.entries(languages)) {
    if (best === null || share > best[1] || (share === best[1] && name.localeCompare(best[0]) < 0)) best = [name, share];
  }
  return best ? best[0] : null;
}

export function templateFor(language: string | null): TemplateId {
  return (language && BY_LANGUAGE[language.toLowerCase()]) || 'generic';
}

const cache = new Map<TemplateId, string>();

export function loadTemplate(id: TemplateId): string {
  let text = cache.get(id);
  if (text === undefined) {
    try {
      text = readFileSync(new URL(`./${id}.md`, import.meta.url), 'utf8');
    } catch {
      throw new OnboardingError('TEMPLATE_MISSING', `instrumentation template '${id}.md' is missing from the package`);
    }
    cache.set(id, text);
  }
  return text;
}

export interface DescriptionContext {
  /** The primary language as GitLab names it, or null. */
  language: string | null;
  /** e.g. 'acme/shop'. */
  projectPath: string;
}

/**
 * Project-supplied text as inline code on one line: no newline (so it can
 * never start a line, where GitLab would run `/command` as a quick action on
 * the issue) and no backtick (so it cannot close the code span). Pure.
 */
export function inlineCode(text: string): string {
  const flat = text.replace(/[\r\n\u2028\u2029]+/g, ' ').replaceAll('`', "'");
  return `\`${flat}\``;
}

/** The issue description: the template with its placeholders filled, then our marker. */
export function renderDescription(id: TemplateId, ctx: DescriptionContext): string {
  // The placeholders sit mid-line in every template; inlineCode keeps it that way whatever the values hold.
  const body = loadTemplate(id)
    .replaceAll('{{language}}', ctx.language === null ? 'the main language' : inlineCode(ctx.language))
    .replaceAll('{{project}}', inlineCode(ctx.projectPath));
  return `${body.trimEnd()}\n\n${ISSUE_MARKER}\n`;
}

function normalised(description: string): string {
  return description.replace(/\r\n?/g, '\n').replace(ANY_MARKER, '<!-- gitlab-otel:onboarding -->').trimEnd();
}

/**
 * Whether an issue description is exactly what we would write for this
 * project now, apart from the template version in the marker. Pure.
 */
export function isOurDescription(description: string, id: TemplateId, ctx: DescriptionContext): boolean {
  return normalised(description) === normalised(renderDescription(id, ctx));
}
