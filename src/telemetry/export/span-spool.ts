// One endpoint's span spool: every submitted group of spans is appended to a
// segment file, as the OTLP protobuf it will be exported as (docs/export.md#spool-records),
// before it can be exported, and an acknowledgement record is
// appended once all its spans are delivered or given up on. On start the
// unacknowledged groups are replayed. Segments are deleted oldest first once
// fully acknowledged (so an acknowledgement is never lost while its data
// survives); over the size bound the oldest segment is evicted and its
// groups are reported so the endpoint drops and counts them.
//
// The spool also owns its endpoint record (endpoint.json): only the name of
// the endpoint it belongs to. Which spools are replayed after a restart is
// decided from the configuration and the journalled jobs, never from disk
// (docs/security.md#removed-endpoints).
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Attributes } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { SpanRecord, SpanStatus } from '../spans.js';
import { AsyncRecordWriter, readRecordFile } from './record-file.js';
import { endpointKey, type EndpointSettings } from './settings.js';
import { encodeSpans, type EncodedSpans } from './span-group.js';

/**
 * Record payloads (docs/export.md#spool-records). Version 2 is binary, one
 * type byte first:
 *   data: [0x01][id f64][enqueuedAt f64][spans u32][ExportTraceServiceRequest]
 *   ack:  [0x02][id f64]
 * Version 1 (spools written before 2026-11-30) is JSON and starts with '{':
 * `{t:'d',id,at,r,s:[StoredSpan]}` / `{t:'a',id}`; it is still read, its
 * spans encoded once on replay. Nothing writes it any more.
 */
const DATA = 0x01;
const ACK = 0x02;
const JSON_OPEN = 0x7b;
const DATA_HEADER = 1 + 8 + 8 + 4;

type Parsed = { t: 'd'; id: number; at: number; spans: number; body?: Buffer; legacy?: V1Data } | { t: 'a'; id: number };
type V1Data = { t: 'd'; id: number; at: number; r: Attributes; s: StoredSpan[] };
type V1Entry = V1Data | { t: 'a'; id: number };

/** Undefined for a payload that is neither format (skipped, like a record that does not parse). */
function parseRecord(p: Buffer): Parsed | undefined {
  if (p.length === 0) return undefined;
  const type = p[0];
  if (type === DATA && p.length >= DATA_HEADER) {
    return { t: 'd', id: p.readDoubleBE(1), at: p.readDoubleBE(9), spans: p.readUInt32BE(17), body: p.subarray(DATA_HEADER) };
  }
  if (type === ACK && p.length === 9) return { t: 'a', id: p.readDoubleBE(1) };
  if (type !== JSON_OPEN) return undefined;
  try {
    const e = JSON.parse(p.toString('utf8')) as V1Entry;
    if (e.t === 'a' && typeof e.id === 'number') return e;
    if (e.t === 'd' && typeof e.id === 'number' && Array.isArray(e.s)) return { t: 'd', id: e.id, at: e.at, spans: e.s.length, legacy: e };
  } catch {
    // Not a record: skipped.
  }
  return undefined;
}

/** The record's parts: the group's body is written as it is, not copied. */
function dataRecord(id: number, at: number, group: EncodedSpans): Buffer[] {
  const header = Buffer.allocUnsafe(DATA_HEADER);
  header[0] = DATA;
  header.writeDoubleBE(id, 1);
  header.writeDoubleBE(at, 9);
  header.writeUInt32BE(group.spans, 17);
  return [header, group.body];
}

function ackRecord(id: number): Buffer {
  const b = Buffer.allocUnsafe(9);
  b[0] = ACK;
  b.writeDoubleBE(id, 1);
  return b;
}

interface StoredSpan {
  t: string;
  i: string;
  p?: string;
  pr?: boolean;
  ts?: string;
  n: string;
  k: number;
  s: string;
  e: string;
  a: Attributes;
  st: SpanStatus;
}

export interface ReplayedGroup extends EncodedSpans {
  readonly ticket: SpoolTicket;
  readonly enqueuedAt: number;
}

export interface SpoolWarning {
  event: 'spool_records_skipped';
  file: string;
  corrupt: number;
  torn: boolean;
}

/** Delivery state of one spooled group; acknowledged when every span is settled. */
export class SpoolTicket {
  constructor(
    readonly id: number,
    public remaining: number,
    private readonly onDone: (id: number) => void,
  ) {}
  settle(n = 1): void {
    if (this.remaining <= 0) return;
    this.remaining -= n;
    if (this.remaining <= 0) this.onDone(this.id);
  }
}

function fromStored(s: StoredSpan): SpanRecord {
  return {
    traceId: s.t,
    spanId: s.i,
    ...(s.p ? { parentSpanId: s.p } : {}),
    ...(s.pr ? { parentIsRemote: true } : {}),
    ...(s.ts ? { traceState: s.ts } : {}),
    name: s.n,
    kind: s.k,
    startTimeUnixNano: BigInt(s.s),
    endTimeUnixNano: BigInt(s.e),
    attributes: s.a,
    status: s.st,
  };
}

interface Segment {
  seq: number;
  path: string;
  bytes: number;
  live: Set<number>;
}

const SEGMENT = /^seg-(\d{8})\.log$/;

export class SpanSpool {
  private segments: Segment[] = [];
  private writer!: AsyncRecordWriter;
  private nextId = 1;
  private readonly segmentBytes: number;
  private readonly recordSegment = new Map<number, Segment>();

  private constructor(
    readonly dir: string,
    private readonly budget: SpoolBudget,
    private readonly onEvict: (ids: number[]) => void,
  ) {
    this.segmentBytes = Math.max(64 * 1024, Math.floor(budget.maxBytes / 16));
    budget.spools.add(this);
  }

  /** Opens (creating) the spool and returns the groups still to deliver, oldest first. */
  static open(
    dir: string,
    budget: SpoolBudget,
    hooks: { onWarning: (w: SpoolWarning) => void; onEvict: (ids: number[]) => void },
  ): { spool: SpanSpool; replay: ReplayedGroup[] } {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const spool = new SpanSpool(dir, budget, hooks.onEvict);
    const files = readdirSync(dir)
      .filter((f) => SEGMENT.test(f))
      .sort();
    const data = new Map<number, { seg: Segment; entry: Extract<Parsed, { t: 'd' }> }>();
    const acked = new Set<number>();
    for (const f of files) {
      const seq = Number(SEGMENT.exec(f)![1]);
      const path = join(dir, f);
      const seg: Segment = { seq, path, bytes: statSync(path).size, live: new Set() };
      spool.segments.push(seg);
      const read = readRecordFile(path);
      if (read.corrupt > 0 || read.torn)
        hooks.onWarning({ event: 'spool_records_skipped', file: path, corrupt: read.corrupt, torn: read.torn });
      for (const p of read.payloads) {
        const e = parseRecord(p);
        if (!e) continue;
        if (e.t === 'd') data.set(e.id, { seg, entry: e });
        else acked.add(e.id);
        spool.nextId = Math.max(spool.nextId, e.id + 1);
      }
    }
    const replay: ReplayedGroup[] = [];
    for (const [id, { seg, entry }] of [...data].sort((a, b) => a[0] - b[0])) {
      if (acked.has(id)) continue;
      let group: EncodedSpans;
      try {
        // A version 1 record is encoded here, once; a version 2 record is already the wire body.
        group = entry.legacy
          ? encodeSpans(entry.legacy.s.map(fromStored), resourceFromAttributes(entry.legacy.r))
          : { body: entry.body!, spans: entry.spans };
      } catch {
        continue;
      }
      if (group.spans === 0) continue;
      seg.live.add(id);
      spool.recordSegment.set(id, seg);
      replay.push({ ticket: spool.ticket(id, group.spans), enqueuedAt: entry.at, body: group.body, spans: group.spans });
    }
    spool.startSegment();
    spool.collect();
    return { spool, replay };
  }

  get bytes(): number {
    return this.segments.reduce((n, s) => n + s.bytes, 0);
  }

  /** Appends an encoded group; `written` resolves once it is in the file. */
  append(group: EncodedSpans, enqueuedAt: number): { ticket: SpoolTicket; written: Promise<void> } {
    const id = this.nextId++;
    const seg = this.current();
    seg.live.add(id);
    this.recordSegment.set(id, seg);
    const before = this.writer.bytes;
    const written = this.writer.append(dataRecord(id, enqueuedAt, group));
    seg.bytes += this.writer.bytes - before;
    this.budget.enforce();
    return { ticket: this.ticket(id, group.spans), written };
  }

  async close(): Promise<void> {
    this.budget.spools.delete(this);
    await this.writer.close();
  }

  private ticket(id: number, n: number): SpoolTicket {
    return new SpoolTicket(id, n, (done) => this.ack(done));
  }

  private ack(id: number): void {
    const seg = this.recordSegment.get(id);
    if (!seg) return;
    this.recordSegment.delete(id);
    seg.live.delete(id);
    const before = this.writer.bytes;
    void this.writer.append(ackRecord(id));
    this.current().bytes += this.writer.bytes - before;
    this.collect();
  }

  private current(): Segment {
    const cur = this.segments[this.segments.length - 1]!;
    if (cur.bytes >= this.segmentBytes && cur.live.size > 0) return this.startSegment();
    return cur;
  }

  private startSegment(): Segment {
    const seq = (this.segments[this.segments.length - 1]?.seq ?? 0) + 1;
    const path = join(this.dir, `seg-${String(seq).padStart(8, '0')}.log`);
    const prev = this.writer;
    if (prev) void prev.close();
    this.writer = new AsyncRecordWriter(path);
    const seg: Segment = { seq, path, bytes: 0, live: new Set() };
    this.segments.push(seg);
    return seg;
  }

  /** Deletes fully acknowledged segments, strictly oldest first. */
  private collect(): void {
    while (this.segments.length > 1 && this.segments[0]!.live.size === 0) {
      const seg = this.segments.shift()!;
      try {
        unlinkSync(seg.path);
      } catch {
        // Already gone: nothing to keep.
      }
    }
  }

  /** Drops the oldest segment, reporting its undelivered groups. False when only the current one is left. */
  evictOldestSegment(): boolean {
    if (this.segments.length <= 1) {
      if (this.segments[0]!.bytes === 0) return false;
      this.startSegment();
    }
    const seg = this.segments[0]!;
    const ids = [...seg.live];
    for (const id of ids) this.recordSegment.delete(id);
    seg.live.clear();
    this.collect();
    if (ids.length > 0) this.onEvict(ids);
    return true;
  }
}

/** The spool size bound, shared by all endpoints' spools: over it, the largest spool loses its oldest segment. */
export class SpoolBudget {
  readonly spools = new Set<SpanSpool>();
  constructor(readonly maxBytes: number) {}

  get bytes(): number {
    let n = 0;
    for (const s of this.spools) n += s.bytes;
    return n;
  }

  enforce(): void {
    for (let guard = 0; guard < 64 && this.bytes > this.maxBytes; guard++) {
      const victim = [...this.spools].sort((a, b) => b.bytes - a.bytes)[0];
      if (!victim || !victim.evictOldestSegment()) return;
    }
  }
}

/** Where an endpoint's spool lives under the spool root: named by a hash of the endpoint's identity. */
export function spoolDirFor(root: string, settings: EndpointSettings): string {
  return join(root, 'endpoints', createHash('sha256').update(endpointKey(settings)).digest('hex').slice(0, 16));
}

/** The spool directories under the spool root (none if it does not exist). */
export function spoolDirs(root: string): string[] {
  try {
    return readdirSync(join(root, 'endpoints')).map((d) => join(root, 'endpoints', d));
  } catch {
    return [];
  }
}

const ENDPOINT_RECORD = 'endpoint.json';

/**
 * Writes the endpoint record into its spool directory: the endpoint's name,
 * for the metrics of what is done with its spans after a restart. Nothing else
 * is written down (docs/security.md#removed-endpoints): settings, credentials
 * and TLS come from the configuration and the journalled jobs, never from disk.
 */
export function writeEndpointRecord(dir: string, settings: Pick<EndpointSettings, 'name'>): void {
  writeFileSync(join(dir, ENDPOINT_RECORD), JSON.stringify({ name: settings.name }), { mode: 0o600 });
}

/** The endpoint name recorded in a spool directory; undefined when absent or unreadable. */
export function readEndpointName(dir: string): string | undefined {
  try {
    const raw = JSON.parse(readFileSync(join(dir, ENDPOINT_RECORD), 'utf8')) as unknown;
    const name = typeof raw === 'object' && raw !== null ? (raw as { name?: unknown }).name : undefined;
    return typeof name === 'string' && name !== '' ? name.slice(0, 200) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes a spool directory no endpoint will deliver from (its endpoint is no
 * longer configured and no journalled job names it). Returns how many spans
 * it still held, for the drop count.
 */
export function discardSpool(dir: string): number {
  let pending = 0;
  const acked = new Set<number>();
  const data = new Map<number, number>();
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => SEGMENT.test(f));
  } catch {
    return 0;
  }
  for (const f of files) {
    for (const p of readRecordFile(join(dir, f)).payloads) {
      // A record that parses as neither format holds nothing to count.
      const e = parseRecord(p);
      if (e?.t === 'd') data.set(e.id, e.spans);
      else if (e?.t === 'a') acked.add(e.id);
    }
  }
  for (const [id, n] of data) if (!acked.has(id)) pending += n;
  rmSync(dir, { recursive: true, force: true });
  return pending;
}
