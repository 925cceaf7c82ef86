// Span-supplied text on a terminal (src/inspect/terminal-text.ts): control and
// bidi characters shown as escapes, widths in terminal columns. Pure.
import t from 'tap';
import { displayWidth, printable, truncate } from '../../src/inspect/terminal-text.js';

t.test('terminal text: printable escapes, widths and truncation count columns', async (t) => {
  t.equal(printable('a\tb\u2066c'), 'a\\x09b\\u2066c');
  t.equal(displayWidth('日本'), 4);
  t.equal(displayWidth('e\u0301'), 1);
  t.equal(truncate('日本語テキスト', 7), '日本語…');
  t.equal(truncate('short', 10), 'short');
});
