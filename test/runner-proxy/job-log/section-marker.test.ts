// section-marker: the incremental matcher for GitLab's section markers (docs/job-log.md#section-markers).
import t from 'tap';
import {
  candidateStart,
  Fed,
  indexOfSection,
  MarkerCandidate,
  MAX_MARKER_BYTES,
  prefixAtEnd,
  type ParsedMarker,
} from '../../../src/runner-proxy/job-log/section-marker.js';

/** Feeds `text` byte by byte; the marker when the last byte completes it, else where it stopped. */
function feed(text: string, c = new MarkerCandidate()): ParsedMarker | { stopped: Fed; at: number } {
  const b = Buffer.from(text, 'latin1');
  for (let i = 0; i < b.length; i++) {
    const r = c.feed(b[i]!);
    if (r === Fed.Complete) return i === b.length - 1 ? c.parsed() : { stopped: r, at: i };
    if (r === Fed.Invalid) return { stopped: r, at: i };
  }
  return { stopped: Fed.More, at: b.length };
}

const SUFFIX = '\r\x1b[0K';

t.test('complete markers parse', async (t) => {
  const start = `section_start:1700000000:step_script${SUFFIX}`;
  t.same(feed(start), { kind: 'start', seconds: 1700000000, name: 'step_script', length: start.length });
  const end = `section_end:1700000009:get_sources${SUFFIX}`;
  t.match(feed(end), { kind: 'end', seconds: 1700000009, name: 'get_sources' });
  t.same(feed(`section_start:1:my.sec-1[collapsed=true]${SUFFIX}`), {
    kind: 'start',
    seconds: 1,
    name: 'my.sec-1',
    options: 'collapsed=true',
    length: `section_start:1:my.sec-1[collapsed=true]${SUFFIX}`.length,
  });
  t.match(feed(`section_start:1:s[collapsed=true, hide_duration=false,a=b]${SUFFIX}`), {
    options: 'collapsed=true, hide_duration=false,a=b',
  });
  t.same(feed('section_start:1:s'), { stopped: Fed.More, at: 17 }, 'incomplete: more bytes needed');
});

t.test('malformed markers are refused where they break', async (t) => {
  const at = (text: string) => (feed(text) as { at: number; stopped: Fed }).at;
  t.equal(at('section_begin:1:s'), 8, 'unknown kind');
  t.equal(at(`section_start::s${SUFFIX}`), 14, 'no digits');
  t.equal(at(`section_start:1a:s${SUFFIX}`), 15, 'a non-digit in the time');
  t.equal(at(`section_start:${'1'.repeat(20)}:s`), 33, 'more than 19 digits');
  t.equal(at(`section_start:1:${SUFFIX}`), 16, 'empty name');
  t.equal(at(`section_start:1:a b${SUFFIX}`), 17, 'a space in the name');
  t.equal(at(`section_start:1:${'n'.repeat(256)}${SUFFIX}`), 16 + 255, 'name over 255 bytes');
  t.equal(at(`section_start:1:s[]${SUFFIX}`), 18, 'empty options');
  t.equal(at(`section_start:1:s[a=]${SUFFIX}`), 20, 'an option without a value');
  t.equal(at(`section_start:1:s[a=b]\n`), 22, 'wrong suffix');
  t.equal(at(`section_start:1:s\r\n`), 18, 'a bare CR is not the suffix');
});

t.test('a candidate is bounded and can be reused', async (t) => {
  const c = new MarkerCandidate();
  t.notOk(c.active);
  const long = `section_start:1:s[${'a=b,'.repeat(200)}`;
  const r = feed(long, c) as { stopped: Fed; at: number };
  t.equal(r.stopped, Fed.Invalid);
  t.equal(r.at, MAX_MARKER_BYTES, 'refused at the byte past the bound');
  t.equal(c.length, MAX_MARKER_BYTES + 1, 'the overflowing byte is kept to search again');
  c.reset();
  t.notOk(c.active, 'reset');
  t.match(feed(`section_end:2:x${SUFFIX}`, c), { kind: 'end', seconds: 2, name: 'x' });
});

t.test('prefixAtEnd and candidateStart find where a marker may begin', async (t) => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  t.equal(prefixAtEnd(b('abc sect'), 0, 8), 4, 'a proper prefix running to the end');
  t.equal(prefixAtEnd(b('abc s'), 0, 5), 4);
  t.equal(prefixAtEnd(b('abc sex'), 0, 7), -1, 'not a prefix');
  t.equal(prefixAtEnd(b('abc'), 0, 3), -1);
  t.equal(prefixAtEnd(b('sect'), 2, 4), -1, 'only from `from` on');
  t.equal(candidateStart(b('xx section_start:1'), 0, 18), 3, 'a full prefix');
  t.equal(candidateStart(b('xx section_start:1'), 4, 18), -1, 'none after `from`');
  t.equal(candidateStart(b('xx secti'), 0, 8), 3, 'a partial prefix at the end');
  t.equal(candidateStart(b('xx section_ yy'), 0, 8), 3, 'a full prefix cut by `end` is a partial one');
  t.equal(candidateStart(b('no markers here'), 0, 15), -1);
});

t.test('indexOfSection answers exactly what indexOf(SECTION_PREFIX) answers, from every offset', async (t) => {
  // Seeded (mulberry32): buffers dense in `_`, in the letters of `section` and in cut or whole prefixes.
  let seed = 0x5ec7;
  const rand = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const pieces = ['section_', 'section', 'ection_', '_', 'sectio_', 'ssection_', 'n_', 's', 'x', '\n', 'é', 'section__'];
  const needle = Buffer.from('section_', 'latin1');
  let checked = 0;
  let found = 0;
  for (let n = 0; n < 300; n++) {
    let text = '';
    while (text.length < 1 + Math.floor(rand() * 80)) text += pieces[Math.floor(rand() * pieces.length)];
    const b = Buffer.from(text, 'utf8');
    for (let from = 0; from <= b.length + 1; from++) {
      const want = b.indexOf(needle, from);
      if (want >= 0) found++;
      if (indexOfSection(b, from) !== want) {
        t.fail(`${JSON.stringify(text)} from ${from}: ${indexOfSection(b, from)}, indexOf says ${want}`);
        return;
      }
      checked++;
    }
  }
  t.ok(found > 1000 && checked - found > 1000, `both answers were met (${found} found, ${checked - found} not)`);
  t.equal(indexOfSection(Buffer.from('section_'), 0), 0);
  t.equal(indexOfSection(Buffer.from('xsection_'), 1), 1);
  t.equal(indexOfSection(Buffer.from('xsection_'), 2), -1, 'a start before `from` is not found');
  t.equal(indexOfSection(Buffer.from('section'), 0), -1, 'a prefix is not a whole `section_`');
});
