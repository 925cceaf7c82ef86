import t from 'tap';
import { isJsonObject } from '../src/json-guards.js';

t.test('only plain objects are JSON objects', async (t) => {
  for (const v of [{}, { a: 1 }, JSON.parse('{"x":[1]}') as unknown, Object.create(null) as unknown])
    t.ok(isJsonObject(v), JSON.stringify(v));
  for (const v of [null, undefined, [], [1], 'x', 0, true, JSON.parse('[{}]') as unknown])
    t.notOk(isJsonObject(v), String(JSON.stringify(v)));
});
