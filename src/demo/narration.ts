// The demo's words: progress lines as things happen and the closing summary.
// Pure: takes what happened, returns text; the caller decides colour.
import { formatDuration } from '../inspect/duration.js';
import type { ReceivedSpan } from '../telemetry/receiver.js';
import { kindOf, type ProgressEvent } from './span-progress.js';

export type Tone = 'plain' | 'dim' | 'good' | 'bad' | 'warn' | 'bold';
export type Paint = (tone: Tone, text: string) => string;

const ANSI: Record<Exclude<Tone, 'plain'>, string> = {
  dim: '\x1b[2m',
  good: '\x1b[32m',
  bad: '\x1b[31m',
  warn: '\x1b[33m',
  bold: '\x1b[1m',
};

export function painter(color: boolean): Paint {
  return color ? (tone, text) => (tone === 'plain' || text === '' ? text : `${ANSI[tone]}${text}\x1b[0m`) : (_tone, text) => text;
}

/** `[ 0.4s]`: time since the demo started. */
export function clock(ms: number): string {
  return `[${(Math.max(0, ms) / 1000).toFixed(1).padStart(4)}s]`;
}

/** Past this many spans in one export call, the call is summed up in one line instead of one line per span. */
export const DETAILED_ARRIVAL_MAX = 4;

export interface JobLabel {
  id: number;
  name: string;
}

function jobRef(jobId: number, names: ReadonlyMap<number, string>): string {
  const name = names.get(jobId);
  return name === undefined ? `job ${jobId}` : `job ${jobId} (${name})`;
}

/** One line for one span that reached the collector. */
export function eventLine(e: ProgressEvent, names: ReadonlyMap<number, string>, paint: Paint): string {
  const took = formatDuration(e.durationNs);
  const who = jobRef(e.jobId, names);
  if (e.kind === 'job') {
    const status = e.status ?? (e.failed ? 'failed' : 'success');
    return `${who} job_execution exported: ${e.failed ? paint('bad', `${status} ✗`) : paint('good', status)} (${took})`;
  }
  const what = e.kind === 'stage' ? `stage ${e.name}` : `${'  '.repeat(Math.max(0, e.depth - 2))}section ${e.name}`;
  const ended = e.failed ? paint('bad', 'failed ✗') : 'ended';
  return `${who} ${e.kind === 'section' ? '  ' : ''}${what} ${ended} (${took})`;
}

/**
 * Lines for one export call the collector accepted. `events` are the spans it
 * placed, which can include earlier ones (sections wait for their stage) and
 * leave out some of `spans` (those still waiting for theirs).
 */
export function arrivalLines(
  spans: readonly ReceivedSpan[],
  events: readonly ProgressEvent[],
  names: ReadonlyMap<number, string>,
  paint: Paint,
): string[] {
  if (spans.length <= DETAILED_ARRIVAL_MAX) return events.map((e) => eventLine(e, names, paint));
  const count = (k: ProgressEvent['kind']): number => spans.filter((s) => kindOf(s) === k).length;
  const failed = spans.filter((s) => s.status.code === 2).length;
  const parts = [`${count('job')} job_execution`, `${count('stage')} stage`, `${count('section')} section`];
  const head = `collector received ${spans.length} spans: ${parts.join(', ')}${failed > 0 ? `, ${paint('bad', `${failed} failed`)}` : ''}`;
  return [paint('good', head), ...events.filter((e) => e.kind === 'job').map((e) => eventLine(e, names, paint))];
}

export interface SummaryFacts {
  pipelineId: number;
  jobs: { state: 'success' | 'failed' | 'error' }[];
  spans: number;
  traces: number;
  failedSpans: number;
  dropped: number;
  runnerCalls: number;
  runnerErrors: number;
  wallMs: number;
  collectorDown?: { downMs: number; jobsFinishedWhileDown: number; spansAfterRecovery: number; lastSpanAfterUpMs?: number };
  problems: readonly string[];
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

export function summaryLines(f: SummaryFacts, paint: Paint): string[] {
  const ok = f.jobs.filter((j) => j.state === 'success').length;
  const failed = f.jobs.filter((j) => j.state === 'failed').length;
  const broken = f.jobs.length - ok - failed;
  const jobParts = [`${ok} succeeded`];
  if (failed > 0) jobParts.push(paint('bad', `${failed} failed`));
  if (broken > 0) jobParts.push(paint('bad', `${broken} did not finish`));
  // Only the head is bold: a nested colour's reset would end the bold mid-line.
  const lines = [
    `${paint('bold', `pipeline ${f.pipelineId}:`)} ${plural(f.jobs.length, 'job')} (${jobParts.join(', ')}) · ${plural(f.spans, 'span')} in ${plural(f.traces, 'trace')}` +
      `${f.failedSpans > 0 ? ` (${f.failedSpans} ERROR)` : ''} · ${f.dropped} dropped · ${(f.wallMs / 1000).toFixed(1)}s`,
  ];
  lines.push(
    f.runnerErrors === 0
      ? `The runner never noticed the proxy: ${plural(f.runnerCalls, 'call')} to GitLab, every one answered without error.`
      : paint('bad', `${f.runnerErrors} of ${plural(f.runnerCalls, 'runner call')} failed.`),
  );
  if (f.collectorDown) {
    const d = f.collectorDown;
    const after = d.lastSpanAfterUpMs === undefined ? '' : `, the last ${(d.lastSpanAfterUpMs / 1000).toFixed(1)}s after it came back`;
    lines.push(
      `The collector was away for the first ${(d.downMs / 1000).toFixed(1)}s: ${plural(d.jobsFinishedWhileDown, 'job')} finished meanwhile, ` +
        `and ${plural(d.spansAfterRecovery, 'span')} the proxy held arrived once it was back${after}.`,
    );
  }
  for (const p of f.problems) lines.push(paint('bad', `problem: ${p}`));
  lines.push(
    paint('dim', 'Next: put the proxy between your runner and GitLab (gitlab-otel runner-proxy --help, README "runner-proxy"),'),
    paint('dim', '      and watch your own jobs with gitlab-otel inspect.'),
  );
  return lines;
}
