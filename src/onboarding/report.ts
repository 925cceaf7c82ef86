// Outputs of a run: one JSON line per project on stdout (as each finishes), a
// summary table on stderr, and with --report FILE a JSON report plus a Markdown
// summary beside it (FILE with .md) for a CI artifact.
//
// Memory must not grow with the group: each result is written to the JSON
// report as it arrives, one result per line (so even a run that is killed
// leaves every finished project on record), and only counts plus a bounded
// sample of rows for the Markdown are kept. The JSON report is the complete
// record; the Markdown is for people, who read the failures first and do not
// page through thousands of table rows, so it lists at most
// MARKDOWN_ROWS_PER_STATUS failed and created projects and says how many more
// the JSON report holds.
import { createWriteStream, openSync, writeFileSync, type WriteStream } from 'node:fs';
import { basename } from 'node:path';
import { OnboardingError } from './errors.js';
import type { Writable } from 'node:stream';
import type { ProjectResult } from './onboard.js';

export interface Summary {
  total: number;
  created: number;
  skipped: number;
  failed: number;
  /** Projects whose marker issue we could not trust (not ours, or not our text): a person must look. */
  conflict: number;
  /** Count per "status: reason code". */
  byReason: Record<string, number>;
  dryRun: boolean;
}

export function emptySummary(dryRun = false): Summary {
  return { total: 0, created: 0, skipped: 0, failed: 0, conflict: 0, byReason: {}, dryRun };
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
    ['conflict', String(s.conflict)],
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

/** At most this many failed, and this many created, projects are listed in the Markdown summary. */
export const MARKDOWN_ROWS_PER_STATUS = 200;

function resultRow(r: ProjectResult): string {
  const issue = r.issue ? `[#${r.issue.iid}](${r.issue.web_url})` : '';
  return `| ${cell(r.project)} | ${r.status} | ${issue} | ${r.workflow?.id ?? ''} | ${cell(r.reason)} |`;
}

/**
 * The Markdown summary for the CI artifact: counts, then the failed and the
 * created projects among `rows` (failed first: they need someone's attention).
 * When `rows` holds fewer of a status than the summary counts, says how many
 * more `jsonReport` lists. Pure.
 */
export function markdownReport(s: Summary, rows: ProjectResult[], jsonReport = 'the JSON report'): string {
  const out = [
    `# OpenTelemetry onboarding${s.dryRun ? ' (dry run)' : ''}`,
    '',
    '| Outcome | Projects |',
    '|---|---:|',
    `| created | ${s.created} |`,
    `| skipped | ${s.skipped} |`,
    `| failed | ${s.failed} |`,
    `| conflict | ${s.conflict} |`,
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
  const sections: [string, 'failed' | 'conflict' | 'created', number][] = [
    ['Failed', 'failed', s.failed],
    ['Conflicts (issues gitlab-otel did not write)', 'conflict', s.conflict],
    ['Created', 'created', s.created],
  ];
  for (const [title, status, count] of sections) {
    const listed = rows.filter((r) => r.status === status);
    if (count === 0 && listed.length === 0) continue;
    out.push('', `## ${title}`, '', '| Project | Status | Issue | Workflow | Reason |', '|---|---|---|---|---|', ...listed.map(resultRow));
    const more = count - listed.length;
    if (more > 0) out.push('', `… and ${more} more ${status} project${more === 1 ? '' : 's'}: see ${cell(jsonReport)}.`);
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

// Resolves once `stream` can take more (or is gone): a slow disk or reader holds the workers back instead of
// growing a buffer with every project.
function writeWithBackpressure(stream: Writable, text: string): Promise<void> | undefined {
  if (stream.write(text) || stream.destroyed) return undefined;
  return new Promise<void>((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

export class Reporter {
  readonly summary: Summary;
  /** Bounded: at most MARKDOWN_ROWS_PER_STATUS per status, and only when there is a report to write. */
  private readonly rows: ProjectResult[] = [];
  private readonly listed = { created: 0, failed: 0, conflict: 0 };
  private file: WriteStream | null = null;
  private fileError: Error | null = null;
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
      const file = createWriteStream('', { fd, encoding: 'utf8' });
      file.on('error', (err) => {
        if (!this.fileError) options.stderr.write(`error: writing the report failed: ${err.message}\n`);
        this.fileError ??= err;
      });
      this.file = file;
      file.write('{"results":[\n');
    }
  }

  /** Prints and records one result; wait for it before recording the next. */
  async record(r: ProjectResult): Promise<void> {
    const line = JSON.stringify(r);
    addToSummary(this.summary, r);
    const out = writeWithBackpressure(this.options.stdout, `${line}\n`);
    const file = this.file;
    let toFile: Promise<void> | undefined;
    if (file && !this.fileError) {
      if (r.status !== 'skipped' && this.listed[r.status] < MARKDOWN_ROWS_PER_STATUS) {
        this.listed[r.status] += 1;
        this.rows.push(r);
      }
      toFile = writeWithBackpressure(file, `${this.first ? '' : ',\n'}${line}`);
      this.first = false;
    }
    await out;
    await toFile;
  }

  /** A run-level error (no project to attach it to), shown in every output. Never throws. */
  async finish(runError?: { code: string; message: string }): Promise<Summary> {
    this.options.stderr.write(summaryTable(this.summary));
    if (runError) this.options.stderr.write(`error: ${runError.message} [${runError.code}]\n`);
    const file = this.file;
    const reportFile = this.options.reportFile;
    if (file && reportFile) {
      const { byReason, ...counts } = this.summary;
      await new Promise<void>((resolve) => {
        if (file.destroyed) return resolve();
        file.once('close', resolve);
        file.end(`\n],\n"summary":${JSON.stringify({ ...counts, by_reason: byReason, ...(runError ? { error: runError } : {}) })}}\n`);
      });
      try {
        writeFileSync(markdownPath(reportFile), markdownReport(this.summary, this.rows, basename(reportFile)));
      } catch (err) {
        this.options.stderr.write(`error: writing the Markdown summary failed: ${(err as Error).message}\n`);
      }
      if (this.fileError) this.options.stderr.write(`error: the JSON report '${reportFile}' is incomplete\n`);
    }
    return this.summary;
  }
}
