import t from 'tap';
import { readFileSync } from 'node:fs';
import type { ReceivedSpan } from '../../src/telemetry/receiver.js';
import { displayWidth } from '../../src/inspect/terminal-text.js';
import { assembleTraces } from '../../src/inspect/trace-tree.js';
import { renderWaterfall, renderWaterfalls } from '../../src/inspect/waterfall.js';
import { asReceived, FIXTURE_SPANS, receivedSpan } from '../support/inspect-trace.js';

const fixture = (name: string): string => readFileSync(new URL(`../support/${name}`, import.meta.url), 'utf8');
const trace = assembleTraces(asReceived(FIXTURE_SPANS))[0]!;

const stripAnsi = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, '');

const span = (over: Partial<ReceivedSpan> & { spanId: string }): ReceivedSpan => receivedSpan(over);

t.test('plain rendering of the fixed trace matches the checked-in waterfall exactly', async (t) => {
  const text = renderWaterfall(trace, { width: 100, color: false, attributes: false });
  t.equal(text, fixture('inspect-waterfall.txt'));
  t.notMatch(text, /\x1b/, 'no escape sequences without colour');
  for (const line of text.trimEnd().split('\n').slice(1)) t.ok(displayWidth(line) <= 100, `fits: ${line.slice(0, 30)}`);
});

t.test('with attributes: sorted under each span, status first, resource under the header', async (t) => {
  t.equal(renderWaterfall(trace, { width: 80, color: false, attributes: true }), fixture('inspect-waterfall-attributes.txt'));
});

t.test('colour marks failed spans red and changes nothing else', async (t) => {
  const plain = renderWaterfall(trace, { width: 100, color: false, attributes: true });
  const coloured = renderWaterfall(trace, { width: 100, color: true, attributes: true });
  t.not(coloured, plain);
  t.equal(stripAnsi(coloured), plain, 'same text once the colour codes are removed');
  const lines = coloured.split('\n');
  const failed = lines.find((l) => stripAnsi(l).startsWith('│  └─ unit_tests'))!;
  t.match(failed, /\x1b\[31munit_tests\x1b\[0m/, 'failed name in red');
  t.match(failed, /\x1b\[31m✗\x1b\[0m/, 'failed mark in red');
  t.match(failed, /\x1b\[31m█+\x1b\[0m/, 'failed bar in red');
  const ok = lines.find((l) => stripAnsi(l).startsWith('│  ├─ install_deps'))!;
  t.notMatch(ok, /\x1b\[31m/, 'a successful span has no red');
  t.notMatch(ok, /✗/);
});

t.test('bars are scaled to the trace and the width parameter is honoured', async (t) => {
  for (const width of [60, 100, 160]) {
    const lines = renderWaterfall(trace, { width, color: false, attributes: false }).trimEnd().split('\n');
    const bars = lines.filter((l) => /│ *█+ *│$/.test(l));
    t.equal(bars.length, 12, `one bar per span at width ${width}`);
    for (const l of bars) t.equal(displayWidth(l), width, `line is ${width} wide`);
    const job = lines.find((l) => l.startsWith('job_execution'))!;
    t.match(job, /│█+│$/, 'the root spans the whole axis');
  }
});

t.test('zero-duration spans still get a one-column bar; a zero-extent trace renders', async (t) => {
  const [tr] = assembleTraces([
    span({ spanId: 'p', name: 'job_execution', startTimeUnixNano: 0n, endTimeUnixNano: 10_000n }),
    span({ spanId: 'z', name: 'instant', parentSpanId: 'p', startTimeUnixNano: 10_000n, endTimeUnixNano: 10_000n }),
  ]);
  const text = renderWaterfall(tr!, { width: 60, color: false, attributes: false });
  const instant = text.split('\n').find((l) => l.includes('instant'))!;
  t.match(instant, /0ns │ +█│$/, 'the instant sits at the end, one column wide');

  const [flat] = assembleTraces([span({ spanId: 'only', startTimeUnixNano: 5n, endTimeUnixNano: 5n })]);
  t.match(renderWaterfall(flat!, { width: 60, color: false, attributes: false }), /only +0ns │█ +│/);
});

t.test('span-supplied text cannot drive the terminal', async (t) => {
  const [tr] = assembleTraces([
    span({
      spanId: 'e',
      name: 'evil\x1b[2J\x1b]0;pwned\x07\u202egnp.exe',
      endTimeUnixNano: 1000n,
      attributes: { 'k\x1b[31m': 'v\r\nfake line\x9b', list: ['a', 1, true], nothing: null },
      status: { code: 2, message: 'bad\x1b[0m' },
    }),
  ]);
  for (const color of [false, true]) {
    const text = stripAnsi(renderWaterfall(tr!, { width: 80, color, attributes: true }));
    t.notMatch(text, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/, 'only newlines remain as control characters');
    t.match(text, 'evil\\x1b[2J\\x1b]0;pwned\\x07\\u202egnp.exe');
    t.match(text, 'k\\x1b[31m = "v\\r\\nfake line\\x9b"');
    t.match(text, 'list = ["a",1,true]');
    t.match(text, 'nothing = null');
    t.match(text, 'status = ERROR "bad\\u001b[0m"', 'strings are JSON-quoted');
  }
  const coloured = renderWaterfall(tr!, { width: 80, color: true, attributes: true });
  t.notMatch(coloured, /\x1b\[2J|\x1b\]/, 'no injected sequences, only our SGR colours');
});

t.test('long names are cut with an ellipsis; a parent that never arrived is marked', async (t) => {
  const [tr] = assembleTraces([span({ spanId: 's', name: 'x'.repeat(80), parentSpanId: 'ff', endTimeUnixNano: 1000n })]);
  const text = renderWaterfall(tr!, { width: 60, color: false, attributes: false });
  const row = text.split('\n')[2]!;
  t.match(row, /^… x+… /, 'detached mark, then the name cut to the label column');
  t.equal(displayWidth(row), 60);
});

t.test('several traces render one after another', async (t) => {
  const traces = assembleTraces([
    ...asReceived(FIXTURE_SPANS),
    span({ spanId: 'o', name: 'other', startTimeUnixNano: 1n, endTimeUnixNano: 2n }),
  ]);
  const text = renderWaterfalls(traces, { width: 100, color: false, attributes: false });
  t.equal(text.match(/^trace /gm)?.length, 2);
  t.ok(text.indexOf('other') < text.indexOf('job_execution'), 'earliest trace first');
});
