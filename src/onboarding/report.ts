// Outputs of a run: one JSON line per project on stdout (as each finishes), a
// summary table on stderr, and with --report FILE a JSON report plus a Markdown
// summary beside it (FILE with .md) for a CI artifact. Results are streamed
// into the JSON file; only counts and the actionable rows (created, failed)
// are kept in memory, so a large group does not grow the process.
import { createWriteStream, openSync, writeFileSync, type WriteStream } from 'node:fs';
import { OnboardingError } from './errors.js';
import type { Writable } from 'node:stream';
import type { ProjectResult, ResultStatus } from './onboard.js';

export interface Summary {
  total: number;
  created: number;
  skipped: number;
  failed: number;
  /** Count per "status: reason code". */
  byReason: Record<string, number>;
  dryRun: boolean;
}

export function emptySummary(dryRun = false): Summary {
  return { total: 0, created: 0, skipped: 0, failed: 0, byReason: {}, dryRun };
}

export function addToSummary(s: Summary, r: ProjectResult): void {
  s.total += 1;
  s[r.status] += 1;
  const key = `${r.status}: ${r.code ?? (r.status === 'created' ? 'CREATED' : 'UNKNOWN')}`;
  s.byReason[key] = (s.byReason[key] ?? 0) + 1;
}

/** The stderr table. Pure. */
export function summaryTable(s: Summary): string {
  const rows: [string, string][] = [
    ['created', String(s.created)],
    ['skipped', String(s.skipped)],
    ['failed', String(s.failed)],
    ['total', String(s.total)],
  ];
  const reasons = Object.entries(s.byReason).sort(([a], [b]) => a.localeCompare(b));
  const width = Math.max(8, ...reasons.map(([k]) => k.length + 2));
  const lines = [`onboarding summary${s.dryRun ? ' (dry run: nothing was written)' : ''}`];
  for (const [k, v] of rows) lines.push(`  ${k.padEnd(width)} ${v.padStart(6)}`);
  if (reasons.length > 0) {
    lines.push('  by outcome:');
    for (const [k, v] of reasons) lines.push(`    ${k.padEnd(width - 2)} ${String(v).padStart(6)}`);
  }
  return `${lines.join('\n')}\n`;
}

function cell(text: string | undefined): string {
  return (text ?? '').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** The Markdown summary for the CI artifact. Pure. */
export function markdownReport(s: Summary, actionable: ProjectResult[]): string {
  const out = [
    `# OpenTelemetry onboarding${s.dryRun ? ' (dry run)' : ''}`,
    '',
    '| Outcome | Projects |',
    '|---|---:|',
    `| created | ${s.created} |`,
    `| skipped | ${s.skipped} |`,
    `| failed | ${s.failed} |`,
    `| **total** | **${s.total}** |`,
    '',
    '## By reason',
    '',
    '| Outcome | Projects |',
    '|---|---:|',
    ...Object.entries(s.byReason)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `| ${cell(k)} | ${v} |`),
  ];
  if (actionable.length > 0) {
    out.push('', '## Created and failed', '', '| Project | Status | Issue | Workflow | Reason |', '|---|---|---|---|---|');
    for (const r of actionable) {
      const issue = r.issue ? `[#${r.issue.iid}](${r.issue.web_url})` : '';
      out.push(`| ${cell(r.project)} | ${r.status} | ${issue} | ${r.workflow?.id ?? ''} | ${cell(r.reason)} |`);
    }
  }
  return `${out.join('\n')}\n`;
}

export interface ReporterOptions {
  stdout: Writable;
  stderr: Writable;
  /** JSON report path; the Markdown summary goes beside it with a .md extension. */
  reportFile?: string;
  dryRun?: boolean;
}

export function markdownPath(reportFile: string): string {
  return /\.json$/i.test(reportFile) ? reportFile.replace(/\.json$/i, '.md') : `${reportFile}.md`;
}

export class Reporter {
  readonly summary: Summary;
  private readonly actionable: ProjectResult[] = [];
  private file: WriteStream | null = null;
  private first = true;

  constructor(private readonly options: ReporterOptions) {
    this.summary = emptySummary(options.dryRun ?? false);
    if (options.reportFile) {
      let fd: number;
      try {
        fd = openSync(options.reportFile, 'w');
      } catch (err) {
        throw new OnboardingError('USAGE', `cannot write the report file '${options.reportFile}': ${(err as Error).message}`);
      }
      this.file = createWriteStream('', { fd, encoding: 'utf8' });
      this.file.on('error', (err) => options.stderr.write(`error: writing the report failed: ${err.message}\n`));
      this.file.write('{"results":[\n');
    }
  }

  record(r: ProjectResult): void {
    const line = JSON.stringify(r);
    this.options.stdout.write(`${line}\n`);
    addToSummary(this.summary, r);
    if (r.status !== ('skipped' satisfies ResultStatus)) this.actionable.push(r);
    if (this.file) {
      this.file.write(`${this.first ? '' : ',\n'}${line}`);
      this.first = false;
    }
  }

  /** A run-level error (no project to attach it to), shown in every output. */
  async finish(runError?: { code: string; message: string }): Promise<Summary> {
    this.options.stderr.write(summaryTable(this.summary));
    if (runError) this.options.stderr.write(`error: ${runError.message} [${runError.code}]\n`);
    const file = this.file;
    if (file && this.options.reportFile) {
      const { byReason, ...counts } = this.summary;
      file.write(`\n],\n"summary":${JSON.stringify({ ...counts, by_reason: byReason, ...(runError ? { error: runError } : {}) })}}\n`);
      await new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve())));
      writeFileSync(markdownPath(this.options.reportFile), markdownReport(this.summary, this.actionable));
    }
    return this.summary;
  }
}
