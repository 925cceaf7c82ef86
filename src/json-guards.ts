// Guards for values that came out of JSON.parse (or YAML): the one place the
// product narrows `unknown` to an object, so every boundary parser agrees on
// what an object is (arrays and null are not).

export type JsonObject = Record<string, unknown>;

/** A plain JSON object: not null, not an array. */
export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
