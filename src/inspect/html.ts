// The HTML waterfall: one self-contained page (inline CSS and JS, no external
// asset, readable offline and without JavaScript). Span names, attributes and
// status messages come from job logs, i.e. from anyone who can push a commit,
// so every one of them is HTML-escaped, never placed inside <script> or
// <style>, and the page's Content-Security-Policy lets only its own script
// (pinned by hash) run: an escaping slip still could not execute anything.
import { createHash } from 'node:crypto';
import type { AttributeValue } from '../telemetry/receiver.js';
import { formatDuration } from './duration.js';
import { printable } from './terminal-text.js';
import { headSpan, isDetached, isError, placement, spanDuration, walk, type Trace, type TraceNode } from './trace-tree.js';

export interface HtmlOptions {
  title?: string;
  /** Shown in the page header; left out when absent so output is deterministic. */
  generatedAt?: Date;
  /** Start with every span's attributes shown (for printing and screenshots). */
  expanded?: boolean;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text safe in HTML content and in quoted attribute values; control characters made visible. */
export function escapeHtml(text: string): string {
  return printable(text).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const DETACHED_WHY = {
  missing: 'its parent span was not received',
  cycle: 'its parent ids form a loop',
  deep: 'nested too deep to draw under its parent',
} as const;

const STATUS_NAMES = ['UNSET', 'OK', 'ERROR'] as const;

function statusName(code: number): string {
  return STATUS_NAMES[code] ?? `code ${code}`;
}

function valueText(value: AttributeValue): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? 'null');
}

function percent(fraction: number): string {
  return `${(Math.min(Math.max(fraction, 0), 1) * 100).toFixed(3)}%`;
}

const STYLE = `
:root { --bg:#fbfbfc; --fg:#1f2328; --muted:#656d76; --line:#d8dee4; --row:#f3f4f6;
  --d0:#0e7490; --d1:#2563eb; --d2:#16a34a; --d3:#9333ea; --err:#dc2626; --indent:1.1rem; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); }
header { padding: 1rem 1.5rem .5rem; border-bottom: 1px solid var(--line); background: #fff; position: sticky; top: 0; z-index: 1; }
h1 { font-size: 1.15rem; margin: 0 0 .25rem; }
.meta { color: var(--muted); margin: 0 0 .5rem; }
.controls { display: flex; gap: .5rem; align-items: center; }
.controls input { flex: 0 1 20rem; padding: .25rem .5rem; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
.controls button { padding: .25rem .6rem; border: 1px solid var(--line); border-radius: 4px; background: #fff; font: inherit; cursor: pointer; }
main { padding: .5rem 1.5rem 2rem; }
section.trace { margin: 1rem 0 1.5rem; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; }
section.trace h2 { font-size: 1rem; margin: 0 0 .5rem; font-weight: 600; }
section.trace h2 code { font-size: .8rem; color: var(--muted); font-weight: 400; }
.failed { color: var(--err); font-weight: 600; }
.row, .axis { display: grid; grid-template-columns: minmax(14rem, 32%) 5.5rem 1fr; gap: .5rem; align-items: center; }
.axis { color: var(--muted); font-size: .75rem; }
.ticks { position: relative; height: 1.1rem; border-bottom: 1px solid var(--line); }
.ticks span { position: absolute; transform: translateX(-50%); }
.ticks span:first-child { transform: none; }
.ticks span:last-child { transform: translateX(-100%); }
ol.spans { list-style: none; margin: 0; padding: 0; }
ol.spans li { border-bottom: 1px solid var(--row); }
ol.spans li.hidden { display: none; }
summary { list-style: none; cursor: pointer; padding: .15rem 0; }
details.resource > summary { color: var(--muted); font-size: .8rem; margin-bottom: .25rem; }
summary::-webkit-details-marker { display: none; }
summary:hover { background: var(--row); }
.label { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.label .mark { display: inline-block; width: 1rem; color: var(--err); font-weight: 700; }
.dur { text-align: right; font-variant-numeric: tabular-nums; color: var(--muted); }
.track { position: relative; height: .9rem; background: repeating-linear-gradient(90deg, transparent 0 calc(25% - 1px), var(--row) calc(25% - 1px) 25%); }
.bar { position: absolute; top: 0; bottom: 0; min-width: 2px; border-radius: 2px; background: var(--d3); }
li.depth-0 .bar { background: var(--d0); } li.depth-1 .bar { background: var(--d1); } li.depth-2 .bar { background: var(--d2); }
li.error .bar { background: var(--err); } li.error .name { color: var(--err); }
.detached { color: var(--muted); }
dl.attrs { display: grid; grid-template-columns: fit-content(35%) 1fr; gap: .1rem .75rem; margin: .25rem 0 .5rem; padding: .4rem .75rem; background: var(--row); border-radius: 4px; font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
dl.attrs dt { color: var(--muted); word-break: break-all; } dl.attrs dd { margin: 0; word-break: break-all; white-space: pre-wrap; }
`;

// Progressive enhancement only: the page is complete without it. It touches
// the DOM through textContent/classList, never innerHTML, and sets the
// data-rendered marker last so a headless check can tell it ran to the end.
const SCRIPT = `
(function () {
  var root = document.documentElement;
  window.addEventListener('error', function (e) { root.setAttribute('data-rendered', 'error: ' + e.message); });
  var items = Array.prototype.slice.call(document.querySelectorAll('ol.spans > li'));
  var details = Array.prototype.slice.call(document.querySelectorAll('ol.spans details'));
  var filter = document.getElementById('filter');
  filter.addEventListener('input', function () {
    var q = filter.value.trim().toLowerCase();
    var shown = 0;
    items.forEach(function (li) {
      var hit = q === '' || (li.getAttribute('data-name') || '').toLowerCase().indexOf(q) !== -1;
      li.classList.toggle('hidden', !hit);
      if (hit) shown++;
    });
    document.getElementById('shown').textContent = q === '' ? '' : shown + ' matching';
  });
  function setAll(open) { details.forEach(function (d) { d.open = open; }); }
  document.getElementById('expand').addEventListener('click', function () { setAll(true); });
  document.getElementById('collapse').addEventListener('click', function () { setAll(false); });
  root.setAttribute('data-spans', String(items.length));
  root.setAttribute('data-rendered', 'ok');
})();
`;

const SCRIPT_HASH = createHash('sha256').update(SCRIPT).digest('base64');
const CSP = `default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-${SCRIPT_HASH}'; img-src data:; base-uri 'none'; form-action 'none'`;

function renderSpan(trace: Trace, node: TraceNode, expanded: boolean): string {
  const { span } = node;
  const failed = isError(span);
  const duration = formatDuration(spanDuration(span));
  const { offset, width } = placement(trace, span);
  const name = escapeHtml(span.name);
  const tooltip = escapeHtml(`${span.name} · ${duration} · ${statusName(span.status.code)}`);
  const detached = isDetached(node)
    ? ` <span class="detached" title="${DETACHED_WHY[node.parent as 'missing' | 'cycle' | 'deep']}">(detached)</span>`
    : '';
  const facts: [string, string][] = [
    ['status', statusName(span.status.code) + (span.status.message ? ` ${span.status.message}` : '')],
    ['span id', span.spanId],
  ];
  if (span.parentSpanId) facts.push(['parent id', `${span.parentSpanId}${node.parent === 'present' ? '' : ` (${node.parent})`}`]);
  facts.push(['start', `+${formatDuration(span.startTimeUnixNano - trace.startTimeUnixNano)}`]);
  const attrs = Object.entries(span.attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const list = [...facts, ...attrs.map(([k, v]): [string, string] => [k, valueText(v)])]
    .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`)
    .join('');
  return (
    `<li class="depth-${node.depth}${failed ? ' error' : ''}" data-name="${name}"><details${expanded ? ' open' : ''}>` +
    `<summary class="row" title="${tooltip}">` +
    `<span class="label" style="padding-left:calc(var(--indent) * ${node.depth})">` +
    `<span class="mark">${failed ? '✗' : ''}</span><span class="name">${name}</span>${detached}</span>` +
    `<span class="dur">${duration}</span>` +
    `<span class="track"><span class="bar" style="left:${percent(offset)};width:${percent(width)}"></span></span>` +
    `</summary><dl class="attrs">${list}</dl></details></li>`
  );
}

function renderTrace(trace: Trace, expanded: boolean): string {
  const extent = trace.endTimeUnixNano - trace.startTimeUnixNano;
  const head = headSpan(trace);
  const ticks = [0n, 1n, 2n, 3n, 4n]
    .map((q) => `<span style="left:${Number(q) * 25}%">${q === 0n ? '0' : formatDuration((extent * q) / 4n)}</span>`)
    .join('');
  const failed = trace.errorCount > 0 ? ` · <span class="failed">${trace.errorCount} failed</span>` : '';
  const spans = [...walk(trace)].map((n) => renderSpan(trace, n, expanded)).join('\n');
  const resource = Object.entries(head?.resource ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const resourceList =
    resource.length === 0
      ? ''
      : `<details class="resource"><summary>resource</summary><dl class="attrs">${resource
          .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(valueText(v))}</dd>`)
          .join('')}</dl></details>`;
  return (
    `<section class="trace" id="trace-${escapeHtml(trace.traceId)}">` +
    `<h2>${escapeHtml(head?.name ?? '(no spans)')} · ${formatDuration(extent)} · ${trace.spanCount} span${trace.spanCount === 1 ? '' : 's'}${failed} <code>${escapeHtml(trace.traceId)}</code></h2>` +
    resourceList +
    `<div class="axis"><span>span</span><span class="dur">duration</span><div class="ticks">${ticks}</div></div>` +
    `<ol class="spans">\n${spans}\n</ol></section>`
  );
}

export function renderHtml(traces: readonly Trace[], options: HtmlOptions = {}): string {
  const title = escapeHtml(options.title ?? 'gitlab-otel traces');
  const spanCount = traces.reduce((n, t) => n + t.spanCount, 0);
  const errorCount = traces.reduce((n, t) => n + t.errorCount, 0);
  const generated = options.generatedAt ? ` · generated ${escapeHtml(options.generatedAt.toISOString())}` : '';
  const body =
    traces.length > 0
      ? traces.map((tr) => renderTrace(tr, options.expanded ?? false)).join('\n')
      : '<p class="meta">No traces received yet.</p>';
  return `<!doctype html>
<html lang="en" data-rendered="no-script">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${title}</h1>
<p class="meta">${traces.length} trace${traces.length === 1 ? '' : 's'} · ${spanCount} span${spanCount === 1 ? '' : 's'}${errorCount > 0 ? ` · <span class="failed">${errorCount} failed</span>` : ''}${generated} · click a span for its attributes</p>
<div class="controls"><input id="filter" type="search" placeholder="Filter spans by name" aria-label="Filter spans by name"><button id="expand" type="button">Show all attributes</button><button id="collapse" type="button">Hide all</button><span id="shown" class="meta"></span></div>
</header>
<main>
${body}
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
