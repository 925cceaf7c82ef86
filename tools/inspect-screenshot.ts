// Manual review of the HTML waterfall: renders the fixed test trace (or an
// HTML file you give it) in headless Chromium and writes a PNG screenshot.
//
//   npx tsx tools/inspect-screenshot.ts [--html FILE] [--screenshot OUT.png]
//                                         [--size 1400,900] [--expanded] [--hostile]
//
// Without --html it renders test/support/inspect-trace.ts (plus, with
// --hostile, the spans that try to inject markup) to a temporary file first.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { renderHtml } from '../src/inspect/html.js';
import { assembleTraces } from '../src/inspect/trace-tree.js';
import { findChromium, runChromium } from '../test/support/inspect-chromium.js';
import { hostileSpans } from '../test/support/inspect-hostile.js';
import { asReceived, FIXTURE_SPANS } from '../test/support/inspect-trace.js';

const { values } = parseArgs({
  options: {
    html: { type: 'string' },
    screenshot: { type: 'string', default: join(tmpdir(), 'gitlab-otel-waterfall.png') },
    size: { type: 'string', default: '1400,900' },
    expanded: { type: 'boolean', default: false },
    hostile: { type: 'boolean', default: false },
  },
});

const chromium = findChromium();
if (!chromium) {
  process.stderr.write('chromium not found: apt-get install -y chromium (or set CHROMIUM=/path/to/chrome)\n');
  process.exit(2);
}

let file = values.html ? resolve(values.html) : undefined;
if (!file) {
  const spans = [...asReceived(FIXTURE_SPANS), ...(values.hostile ? hostileSpans() : [])];
  file = join(mkdtempSync(join(tmpdir(), 'inspect-shot-')), 'traces.html');
  writeFileSync(file, renderHtml(assembleTraces(spans), { expanded: values.expanded, generatedAt: new Date() }));
}
const out = resolve(values.screenshot);
await runChromium(chromium, ['--hide-scrollbars', `--window-size=${values.size}`, `--screenshot=${out}`, pathToFileURL(file).href], 60_000);
process.stdout.write(`${out}\n`);
