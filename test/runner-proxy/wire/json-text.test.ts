// json-text: byte-preserving edits of raw JSON (the proxy edits the runner's bodies without re-serialising them).
import t from 'tap';
import { append, applyEdits, insertFirstMember, locate, removal, type MemberSpan } from '../../../src/runner-proxy/wire/json-text.js';

const removeMember = (text: string, m: MemberSpan): string => applyEdits(text, [removal(text, m)]);
const appendElement = (text: string, element: string): string =>
  applyEdits(text, [append(text, { start: text.indexOf('['), end: text.lastIndexOf(']') + 1 }, element)]);

t.test('json-text locates, removes, inserts and appends without touching other bytes', async (t) => {
  const text = ' { "a" : 1 , "b": {"c": [1, 2 ], "d":"x\\"}" }, "big": 123456789012345678901 , "a": 2 }';
  const a = locate(text, ['a'])!;
  t.equal(text.slice(a.start, a.end), '2', 'duplicate keys: the last wins, as in Go');
  t.equal(text.slice(locate(text, ['b', 'd'])!.start, locate(text, ['b', 'd'])!.end), '"x\\"}"', 'escaped quotes');
  t.equal(locate(text, ['b', 'zz']), undefined);
  t.equal(locate(text, ['a', 'x']), undefined, 'cannot descend into a number');
  const removed = removeMember(text, locate(text, ['b'])!);
  t.same(JSON.parse(removed), { a: 2, big: 1.2345678901234568e20 });
  t.ok(removed.includes('123456789012345678901'), 'big integers keep their digits');
  const last = removeMember('{"x":1,"y":2}', locate('{"x":1,"y":2}', ['y'])!);
  t.equal(last, '{"x":1}');
  t.equal(removeMember('{"only":1}', locate('{"only":1}', ['only'])!), '{}');
  t.equal(insertFirstMember('{}', 0, '"k":true'), '{"k":true}');
  t.equal(insertFirstMember('{"a":1}', 0, '"k":true'), '{"k":true,"a":1}');
  t.equal(appendElement('[]', '1'), '[1]');
  t.equal(appendElement('[ 1 ]', '2'), '[ 1 ,2]');
  t.same(
    JSON.parse(
      applyEdits('{"a":[1],"b":2}', [
        append('{"a":[1],"b":2}', locate('{"a":[1],"b":2}', ['a'])!, '3'),
        removal('{"a":[1],"b":2}', locate('{"a":[1],"b":2}', ['b'])!),
      ]),
    ),
    { a: [1, 3] },
    'several edits apply back to front',
  );
  t.throws(() => locate('{"a": tru}', ['b']), 'malformed text throws (callers fall back to the original)');
});
