// The terminal waterfall: one line per span, the tree drawn in the label
// column, and a bar on a time axis scaled to the trace's extent. Pure: takes a
// Trace, returns text; the caller decides colour (TTY, NO_COLOR) and width.
import type { AttributeValue } from '../telemetry/receiver.js';
import { formatDuration } from './duration.js';
import { displayWidth, printable, truncate } from './terminal-text.js';
import { headSpan, isDetached, isError, spanDuration, type Trace, type TraceNode } from './trace-tree.js';

export interface WaterfallOptions {
  /** Total line width in columns; the bar takes what the label and duration leave. */
  width: number;
  /** ANSI colours (the caller decides: a TTY and no NO_COLOR). */
  color: boolean;
  /** Show each span's attributes (sorted by key) under it. */
  attributes: boolean;
}

export const DEFAULT_WIDTH = 100;
const MIN_BAR = 10;
const DURATION_COLUMNS = 7;
const MAX_VALUE_CHARS = 300;

export const FAILED_MARK = '✗';
/** Marks a top-level span whose parent id names a span not drawn above it (not received, a loop, too deep). */
export const DETACHED_MARK = '…';

const ANSI = {
  reset: '\x1b[0m',
  bold: '\x1b[1m',
  dim: '\x1b[2m',
  red: '\x1b[31m',
  green: '\x1b[32m',
  yellow: '\x1b[33m',
  blue: '\x1b[34m',
  magenta: '\x1b[35m',
  cyan: '\x1b[36m',
} as const;

/** Bar colours by depth: the job, its stages, user sections and deeper. */
const DEPTH_COLOURS = [ANSI.cyan, ANSI.blue, ANSI.green, ANSI.magenta] as const;

type Paint = (code: string, text: string) => string;

function painter(color: boolean): Paint {
  return color ? (code, text) => (text === '' ? '' : `${code}${text}${ANSI.reset}`) : (_code, text) => text;
}

export function formatAttributeValue(value: AttributeValue): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? 'null');
  const shown = text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}… (${text.length} chars)` : text;
  return printable(shown);
}

function sortedEntries(attrs: Record<string, AttributeValue>): [string, AttributeValue][] {
  return Object.entries(attrs).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

interface Row {
  node: TraceNode;
  /** Tree glyphs before the name, e.g. "│  ├─ ". */
  branch: string;
  /** Tree glyphs that continue below this row, for its attribute lines. */
  continuation: string;
  name: string;
}

function rows(trace: Trace): Row[] {
  const out: Row[] = [];
  const visit = (node: TraceNode, lead: string, branch: string, below: string): void => {
    // Jobs of one pipeline share the span name job_execution; the job's name tells them apart.
    const jobName = node.span.attributes['ci.job.name'];
    const qualifier = node.span.name === 'job_execution' && typeof jobName === 'string' ? ` (${jobName})` : '';
    const name = (isDetached(node) ? `${DETACHED_MARK} ` : '') + printable(node.span.name + qualifier);
    out.push({ node, branch: lead + branch, continuation: lead + below, name });
    const childLead = lead + (node.depth === 0 ? '' : below);
    node.children.forEach((child, i) => {
      const last = i === node.children.length - 1;
      visit(child, childLead, last ? '└─ ' : '├─ ', last ? '   ' : '│  ');
    });
  };
  // Top-level spans carry no glyph; their children's glyphs start at column 0.
  for (const root of trace.roots) visit(root, '', '', '');
  return out;
}

function bar(trace: Trace, node: TraceNode, columns: number): { before: number; length: number } {
  const extent = trace.endTimeUnixNano - trace.startTimeUnixNano;
  if (extent <= 0n) return { before: 0, length: 1 };
  const cols = BigInt(columns);
  const from = node.span.startTimeUnixNano - trace.startTimeUnixNano;
  const to = from + spanDuration(node.span);
  let start = Number((from * cols) / extent);
  let end = Number((to * cols + extent - 1n) / extent);
  // Every span gets at least one column, zero-length ones included.
  if (start > columns - 1) start = columns - 1;
  if (end <= start) end = start + 1;
  return { before: start, length: end - start };
}

export function renderWaterfall(trace: Trace, options: WaterfallOptions): string {
  const paint = painter(options.color);
  const width = Math.max(options.width, 40);
  const all = rows(trace);
  const labelNeed = Math.max(12, ...all.map((r) => displayWidth(r.branch) + displayWidth(r.name)));
  const labelColumns = Math.min(labelNeed, Math.max(12, Math.floor(width * 0.4)));
  // label, space, mark, space, duration, space, │bar│
  const barColumns = Math.max(MIN_BAR, width - labelColumns - 3 - DURATION_COLUMNS - 1 - 2);
  const barStart = labelColumns + 3 + DURATION_COLUMNS + 1;

  const lines: string[] = [];
  const extent = trace.endTimeUnixNano - trace.startTimeUnixNano;
  const head = headSpan(trace);
  const facts = [
    printable(head?.name ?? '(no spans)'),
    formatDuration(extent),
    `${trace.spanCount} span${trace.spanCount === 1 ? '' : 's'}`,
  ];
  if (trace.errorCount > 0) facts.push(paint(ANSI.red, `${trace.errorCount} failed`));
  lines.push(`${paint(ANSI.bold, `trace ${trace.traceId}`)}  ${facts.join(' · ')}`);

  if (options.attributes && head) {
    for (const [key, value] of sortedEntries(head.resource)) {
      lines.push(paint(ANSI.dim, `  resource ${printable(key)} = ${formatAttributeValue(value)}`));
    }
  }

  const total = formatDuration(extent);
  const axis = `0${' '.repeat(Math.max(1, barColumns + 2 - 1 - total.length))}${total}`;
  lines.push(paint(ANSI.dim, ' '.repeat(barStart) + axis));

  for (const row of all) {
    const { span, depth } = row.node;
    const failed = isError(span);
    const label = truncate(row.branch + row.name, labelColumns);
    const branchPart = label.startsWith(row.branch) ? row.branch : '';
    const namePart = label.slice(branchPart.length);
    const pad = ' '.repeat(labelColumns - displayWidth(label));
    const colour = failed ? ANSI.red : DEPTH_COLOURS[Math.min(depth, DEPTH_COLOURS.length - 1)]!;
    const { before, length } = bar(trace, row.node, barColumns);
    const barText = ' '.repeat(before) + paint(colour, '█'.repeat(length)) + ' '.repeat(barColumns - before - length);
    lines.push(
      paint(ANSI.dim, branchPart) +
        (failed ? paint(ANSI.red, namePart) : namePart) +
        pad +
        ' ' +
        (failed ? paint(ANSI.red, FAILED_MARK) : ' ') +
        ' ' +
        paint(ANSI.dim, formatDuration(spanDuration(span)).padStart(DURATION_COLUMNS)) +
        ' ' +
        paint(ANSI.dim, '│') +
        barText +
        paint(ANSI.dim, '│'),
    );

    if (options.attributes) {
      const indent = row.continuation + (row.node.children.length > 0 ? '│  ' : '   ');
      const details: string[] = [];
      if (failed || span.status.message !== '') {
        const code = span.status.code === 2 ? 'ERROR' : span.status.code === 1 ? 'OK' : 'UNSET';
        details.push(`status = ${code}${span.status.message ? ` ${formatAttributeValue(span.status.message)}` : ''}`);
      }
      for (const [key, value] of sortedEntries(span.attributes)) {
        details.push(`${printable(key)} = ${formatAttributeValue(value)}`);
      }
      for (const detail of details) lines.push(`${paint(ANSI.dim, indent)} ${detail}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Several traces, one after another with a blank line between them. */
export function renderWaterfalls(traces: readonly Trace[], options: WaterfallOptions): string {
  return traces.map((t) => renderWaterfall(t, options)).join('\n');
}
