import t from 'tap';
import { createHash } from 'node:crypto';
import { escapeHtml, renderHtml } from '../../src/inspect/html.js';
import { assembleTraces } from '../../src/inspect/trace-tree.js';
import { asReceived, FIXTURE_SPANS } from '../support/inspect-trace.js';
import { HOSTILE_NAMES, hostileSpans } from '../support/inspect-hostile.js';

const traces = assembleTraces([...asReceived(FIXTURE_SPANS), ...hostileSpans()]);
const html = renderHtml(traces);

t.test('escapeHtml neutralises markup and shows control characters', async (t) => {
  t.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  t.equal(escapeHtml('bell\x07'), 'bell\\x07');
});

t.test('no span-supplied markup survives unescaped', async (t) => {
  for (const name of HOSTILE_NAMES) {
    t.notOk(html.includes(name), `raw text absent: ${name}`);
    t.ok(html.includes(escapeHtml(name)), `escaped text present: ${name}`);
  }
  // Escaped text holds no '<', so every tag left in the page is one we wrote.
  const tags = html.match(/<[^>]*>/g) ?? [];
  const names = new Set(tags.map((tag) => /^<\/?([a-zA-Z0-9!]+)/.exec(tag)?.[1]?.toLowerCase()));
  t.same(
    [...names].sort(),
    [
      '!doctype',
      'body',
      'button',
      'code',
      'dd',
      'details',
      'div',
      'dl',
      'dt',
      'h1',
      'h2',
      'head',
      'header',
      'html',
      'input',
      'li',
      'main',
      'meta',
      'ol',
      'p',
      'script',
      'section',
      'span',
      'style',
      'summary',
      'title',
    ],
    'only our own elements',
  );
  t.equal(tags.filter((tag) => /^<h1\b/.test(tag)).length, 1, 'one heading: ours');
  t.equal(tags.filter((tag) => /^<script\b/.test(tag)).length, 1, 'exactly one script: ours');
  // Escaped values hold no '"', so dropping quoted values leaves just attribute names.
  const bare = tags.map((tag) => tag.replace(/"[^"]*"/g, '""'));
  t.notOk(
    bare.some((tag) => /\son\w+\s*=/i.test(tag)),
    'no event-handler attribute in any tag',
  );
  t.ok(html.includes('&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;'), 'resource attributes are escaped too');
});

t.test('self-contained: no external asset, a CSP pinning the one inline script', async (t) => {
  const bare = (html.match(/<[^>]*>/g) ?? []).map((tag) => tag.replace(/"[^"]*"/g, '""'));
  t.notOk(
    bare.some((tag) => /\s(src|href|action|srcset)\s*=/i.test(tag)),
    'nothing loaded from anywhere',
  );
  t.notMatch(html, /@import|url\(/i, 'no CSS fetches');
  const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
  const hash = createHash('sha256').update(script).digest('base64');
  t.match(html, `script-src 'sha256-${hash}'`, 'the CSP hash is the script’s');
  t.match(html, "default-src 'none'");
});

t.test('every span is in the page with its duration and status', async (t) => {
  const rows = html.match(/<li class="depth-/g) ?? [];
  t.equal(rows.length, 12 + 1 + HOSTILE_NAMES.length);
  for (const name of ['job_execution', 'step_script', 'unit_tests', 'cleanup_file_variables', 'install_deps']) {
    t.match(html, `<span class="name">${name}</span>`);
  }
  t.match(html, /<span class="name">unit_tests<\/span><\/span><span class="dur">17\.8s<\/span>/);
  t.match(html, /<li class="depth-2 error" data-name="unit_tests">/, 'failed span marked');
  t.match(html, /<span class="mark">✗<\/span><span class="name">unit_tests/);
  t.match(html, /<dt>ci\.cache\.hit<\/dt><dd>true<\/dd>/, 'attributes in the details');
  t.match(html, /<dt>status<\/dt><dd>ERROR script_failure<\/dd>/);
  t.match(html, /left:19\.059%;width:70\.353%/, 'step_script bar placed on the axis');
});

t.test('rendering is deterministic; generatedAt is opt-in', async (t) => {
  t.equal(renderHtml(traces), html);
  t.notMatch(html, /generated/);
  t.match(renderHtml(traces, { generatedAt: new Date(0) }), 'generated 1970-01-01T00:00:00.000Z');
  t.match(renderHtml([]), 'No traces received yet.');
});
