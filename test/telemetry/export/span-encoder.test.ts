// span-encoder.ts (docs/export.md#span-encoder): SpanRecords encoded straight to
// an ExportTraceServiceRequest give the same bytes as the SDK's
// ProtobufTraceSerializer after toReadableSpan, for every field a SpanRecord
// carries and every attribute value type; and the bytes decode with the proto
// definitions the receivers use.
import t, { type Test } from 'tap';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { Attributes } from '@opentelemetry/api';
import { encodeResourceSpans, encodeSpanRecords } from '../../../src/telemetry/export/span-encoder.js';
import { serializeSpans } from '../../../src/telemetry/export/otlp-transport.js';
import { decodeExportRequest } from '../../../src/telemetry/receiver.js';
import { otlpTypes } from '../../../src/telemetry/otlp-proto.js';
import { newSpanId, newTraceId, SpanKind, SpanStatusCode, toReadableSpan, type SpanRecord } from '../../../src/telemetry/spans.js';

/** What the SDK serializer writes for the same spans, grouped as the queue holds them. */
const sdk = (groups: { records: readonly SpanRecord[]; resource: Resource }[]): Buffer =>
  serializeSpans(groups.flatMap((g) => g.records.map((s) => toReadableSpan(s, g.resource))));

const span = (over: Partial<SpanRecord> = {}): SpanRecord => ({
  traceId: newTraceId(),
  spanId: newSpanId(),
  name: 'job_execution',
  kind: SpanKind.INTERNAL,
  startTimeUnixNano: 1_764_000_000_123_456_789n,
  endTimeUnixNano: 1_764_000_042_987_654_321n,
  attributes: {},
  status: { code: SpanStatusCode.UNSET },
  ...over,
});

const same = (t: Test, groups: { records: readonly SpanRecord[]; resource: Resource }[], what: string): void => {
  const ours = encodeResourceSpans(groups);
  const theirs = sdk(groups);
  t.ok(ours.equals(theirs), `${what}: same bytes as the SDK serializer (${ours.length} / ${theirs.length})`);
};

const res = resourceFromAttributes({ 'service.name': 'gitlab-runner', 'host.name': 'runner-1', 'ci.runner.id': 42 });

t.test('every attribute value type, as the SDK serializer encodes it', async (t) => {
  const values: Record<string, unknown> = {
    string: 'build',
    empty: '',
    true: true,
    false: false,
    zero: 0,
    int: 7,
    negative: -3,
    int32max: 2 ** 31 - 1,
    uint32: 2 ** 32 - 1,
    above32: 2 ** 32 + 5,
    safe: Number.MAX_SAFE_INTEGER,
    above53: 2 ** 60,
    int64min: -(2 ** 63),
    int64maxPlus: 2 ** 63,
    negativeBig: -(2 ** 40) - 1,
    double: 1.5,
    negativeDouble: -0.25,
    nan: Number.NaN,
    inf: Number.POSITIVE_INFINITY,
    strings: ['a', 'é', ''],
    numbers: [1, 2.5, -7],
    bools: [true, false],
    withNull: ['x', null, undefined],
    emptyArray: [],
    bytes: new Uint8Array([0, 1, 255]),
    nested: { a: 1, b: ['c'], d: { e: true } },
    undef: undefined,
    nul: null,
  };
  for (const [k, v] of Object.entries(values)) same(t, [{ records: [span({ attributes: { [k]: v } as Attributes })], resource: res }], k);
  same(t, [{ records: [span({ attributes: values as Attributes })], resource: res }], 'all together');
});

t.test('non-ASCII and long strings: names, keys, values, status messages, resource attributes', async (t) => {
  const long = 'x'.repeat(200);
  const longer = 'ü'.repeat(9000); // 18,000 UTF-8 bytes: a three-byte length
  for (const [what, s] of [
    ['accents', 'déploiement'],
    ['CJK', '構築ステージ'],
    ['emoji', 'build 🚀 done'],
    ['lone surrogate', 'bad \ud800 half'],
    ['127 ASCII bytes', 'y'.repeat(127)],
    ['128 ASCII bytes', 'y'.repeat(128)],
    ['long ASCII', long],
    ['long non-ASCII', longer],
  ] as const) {
    same(
      t,
      [
        {
          records: [span({ name: s, attributes: { [s]: s, k: s }, status: { code: SpanStatusCode.ERROR, message: s } })],
          resource: resourceFromAttributes({ [s]: s }),
        },
      ],
      what,
    );
  }
});

t.test('ids, parents (local and remote), trace state, kinds, statuses, times', async (t) => {
  const traceId = newTraceId();
  const records: SpanRecord[] = [
    span({ traceId }),
    span({ traceId, parentSpanId: newSpanId() }),
    span({ traceId, parentSpanId: newSpanId(), parentIsRemote: true }),
    span({ traceId, parentSpanId: newSpanId(), parentIsRemote: false }),
    span({ traceId, parentIsRemote: true }), // no parent: the flag says local, as toReadableSpan makes it
    span({ traceId, traceState: 'vendor=abc,other=1' }),
    span({ traceId, traceState: 'not a valid entry' }),
    span({ traceId, traceState: '' }),
    span({ traceId: 'ABCDEF0123456789ABCDEF0123456789', spanId: 'ABCDEF0123456789' }),
    ...[SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER].map((kind) => span({ kind })),
    span({ status: { code: SpanStatusCode.OK } }),
    span({ status: { code: SpanStatusCode.ERROR, message: 'script failure' } }),
    span({ status: { code: SpanStatusCode.ERROR, message: '' } }),
    span({ startTimeUnixNano: 5n, endTimeUnixNano: 3n }), // end before start: sent as the start
    span({ startTimeUnixNano: 0n, endTimeUnixNano: 0n }),
    span({ startTimeUnixNano: 2n ** 63n + 1n, endTimeUnixNano: 2n ** 64n - 1n }),
  ];
  same(t, [{ records, resource: res }], 'one resource, every variant');
  const decoded = decodeExportRequest(encodeSpanRecords(records, res));
  t.same(
    decoded.map((s) => [s.spanId, s.parentSpanId, s.kind, s.status.code]),
    records.map((s) => [s.spanId.toLowerCase(), s.parentSpanId ?? '', s.kind + 1, s.status.code]),
    'decoded by the receivers’ proto definitions: ids, parents, kinds (OTLP = API + 1) and status codes',
  );
  t.equal(decoded[5]!.traceState, 'vendor=abc,other=1');
  t.equal(decoded[17]!.endTimeUnixNano, 5n, 'end clamped to the start');
});

t.test('several resources interleaved: one ResourceSpans per resource, in first-seen order, as the SDK groups them', async (t) => {
  const a = resourceFromAttributes({ 'service.name': 'a' });
  const b = resourceFromAttributes({ 'service.name': 'b' }, { schemaUrl: 'https://opentelemetry.io/schemas/1.26.0' });
  const empty = resourceFromAttributes({});
  const groups = [
    { records: [span(), span()], resource: a },
    { records: [span()], resource: b },
    { records: [], resource: empty },
    { records: [span()], resource: a },
    { records: [span({ attributes: { i: 1 } })], resource: empty },
  ];
  same(t, groups, 'interleaved');
  const { ExportTraceServiceRequest } = otlpTypes();
  const msg = ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(encodeResourceSpans(groups))) as {
    resourceSpans: { schemaUrl?: string; scopeSpans: { scope: { name: string; version: string }; spans: unknown[] }[] }[];
  };
  t.same(
    msg.resourceSpans.map((r) => [r.scopeSpans.length, r.scopeSpans[0]!.spans.length, r.schemaUrl ?? '']),
    [
      [1, 3, ''],
      [1, 1, 'https://opentelemetry.io/schemas/1.26.0'],
      [1, 1, ''],
    ],
  );
  t.same(msg.resourceSpans[0]!.scopeSpans[0]!.scope, { name: 'gitlab-otel', version: '0.1.0' });
  t.equal(encodeResourceSpans([]).length, 0, 'no spans: an empty request, as the SDK writes it');
  t.equal(encodeSpanRecords([], a).length, 0);
});

t.test('a batch larger than the scratch buffer and length prefixes of every size', async (t) => {
  const big = Array.from({ length: 3000 }, (_, i) =>
    span({
      name: `stage_${i}`,
      attributes: { 'ci.job.id': i, 'ci.job.name': 'build', 'ci.stage.name': `stage_${i}`, pad: 'p'.repeat(i % 300) },
    }),
  );
  same(t, [{ records: big, resource: res }], '3000 spans (three-byte lengths for the ScopeSpans and ResourceSpans)');
  // The scratch buffer is reused: a small encoding after a large one is not polluted by it.
  same(t, [{ records: [span()], resource: res }], 'small after large');
  const huge = Array.from({ length: 40 }, () => span({ attributes: { blob: 'z'.repeat(150_000) } }));
  same(t, [{ records: huge, resource: res }], '6 MB request (a four-byte length, a scratch buffer let go after use)');
  same(t, [{ records: [span()], resource: res }], 'small after huge');
});
