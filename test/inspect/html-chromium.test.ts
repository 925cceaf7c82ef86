// The HTML waterfall in a real browser: the page loads from a file:// URL with
// no network, its one script passes the page's own CSP and runs to the end,
// and every span (hostile names included, as text) is in the rendered DOM.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderHtml } from '../../src/inspect/html.js';
import { assembleTraces, walk } from '../../src/inspect/trace-tree.js';
import { asReceived, FIXTURE_SPANS } from '../support/inspect-trace.js';
import { hostileSpans } from '../support/inspect-hostile.js';
import { findChromium, runChromium } from '../support/inspect-chromium.js';

const chromium = findChromium();

// How Chromium serialises text content in --dump-dom output.
const asDomText = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

t.test(
  'the HTML waterfall renders in headless Chromium without errors',
  { skip: chromium ? false : 'chromium not found on PATH (apt-get install chromium; .ci/run installs it)' },
  async (t) => {
    const traces = assembleTraces([...asReceived(FIXTURE_SPANS), ...hostileSpans()]);
    const dir = mkdtempSync(join(tmpdir(), 'inspect-html-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'traces.html');
    writeFileSync(file, renderHtml(traces));

    const { stdout: dom } = await runChromium(chromium!, ['--dump-dom', pathToFileURL(file).href], 90_000);
    const htmlTag = /<html[^>]*>/.exec(dom)?.[0] ?? '';
    t.match(htmlTag, 'data-rendered="ok"', 'the page script ran to its end (and passed the CSP)');
    const spans = traces.reduce((n, tr) => n + tr.spanCount, 0);
    t.match(htmlTag, `data-spans="${spans}"`, 'the script saw every span row');
    t.notMatch(htmlTag, 'data-pwned', 'no injected script ran');
    t.notMatch(dom, /<(img|svg|iframe)\b/i, 'no injected element exists');
    t.equal(dom.match(/<h1\b/g)?.length, 1, 'one heading: ours');

    for (const trace of traces) {
      for (const node of walk(trace)) {
        t.ok(dom.includes(`<span class="name">${asDomText(node.span.name)}</span>`), `span shown as text: ${node.span.name}`);
      }
    }
  },
);
