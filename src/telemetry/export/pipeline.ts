// The export pipeline the proxy hands finished spans to. It fans each group of
// spans out to the endpoints named for it (configured ones, plus GitLab's
// payload endpoints created on demand, bounded in number), owns the spool
// budget and answers /healthz.
import { mkdirSync } from 'node:fs';
import type { Resource } from '@opentelemetry/resources';
import type { SpanRecord } from '../spans.js';
import { countDropped, type ExportMetrics } from './export-metrics.js';
import type { Logger } from '../../log.js';
import { EndpointExporter, type EndpointHealth } from './endpoint.js';
import { SpanGroup } from './span-group.js';
import { endpointKey, MAX_PAYLOAD_ENDPOINTS, type EndpointSettings, type SpoolSettings } from './settings.js';
import { discardSpool, readEndpointName, SpoolBudget, spoolDirFor, spoolDirs } from './span-spool.js';
import type { TokenSource } from '../auth/token.js';

export type { EndpointHealth };

export interface SpanSink {
  /** Never throws, never blocks, never awaits I/O in the caller. */
  submit(spans: readonly SpanRecord[], resource: Resource, endpoints: readonly EndpointSettings[]): void;
}

export interface ExportPipelineOptions {
  endpoints: EndpointSettings[];
  spool?: SpoolSettings;
  /** Created by the caller on the registry it serves (createExportMetrics); the pipeline and its endpoints count there. */
  metrics: ExportMetrics;
  /** Messages are stable event names (see endpoint.ts); the level is chosen where each is logged. */
  log: Logger;
  /** Token sources by endpoint name, replacing the ones built from settings (tests). */
  tokenSources?: Record<string, TokenSource>;
}

export class ExportPipeline implements SpanSink {
  private readonly endpoints = new Map<string, EndpointExporter>();
  /** Keys of the endpoints made on demand, least recently used first. */
  private readonly onDemand: string[] = [];
  /** Evicted endpoints still shutting down; `shutdown` waits for them. */
  private readonly retiring = new Set<Promise<void>>();
  private readonly metrics: ExportMetrics;
  private readonly budget?: SpoolBudget;
  private closed = false;

  private constructor(private readonly options: ExportPipelineOptions) {
    this.metrics = options.metrics;
    if (options.spool) {
      this.budget = new SpoolBudget(options.spool.maxBytes);
      try {
        // The spool holds span attributes: owner-only.
        mkdirSync(options.spool.dir, { recursive: true, mode: 0o700 });
      } catch (err) {
        // Each endpoint's spool reports itself unavailable (spool_unavailable) when it cannot open.
        options.log('warn', 'spool_dir_unavailable', { code: (err as NodeJS.ErrnoException).code ?? 'error' });
      }
    }
    for (const e of options.endpoints) this.endpoint(e, false);
  }

  /**
   * Builds the configured endpoints and replays their spools (spools no
   * configured endpoint owns wait for settleOrphans); a promise so callers need
   * not change if that goes async.
   */
  static create(options: ExportPipelineOptions): Promise<ExportPipeline> {
    return Promise.resolve(new ExportPipeline(options));
  }

  /** The configured endpoints: what a job without payload endpoints exports to. */
  get configured(): readonly EndpointSettings[] {
    return this.options.endpoints;
  }

  submit(spans: readonly SpanRecord[], resource: Resource, endpoints: readonly EndpointSettings[]): void {
    try {
      // Endpoints this group names are all in use now: none may be evicted to make room for a sibling
      // (it would be rebuilt a moment later, while the evicted instance is still closing its spool).
      for (const settings of endpoints) this.touch(endpointKey(settings));
      // One encoding for every endpoint the group goes to (if it is encoded at all), made when the first one takes it
      // (docs/export.md#encode-once).
      const group = new SpanGroup(spans, resource);
      for (const settings of endpoints) {
        const e = this.endpoint(settings, true);
        if (e) e.submitGroup(group, endpoints.length > 1);
        else countDropped(this.metrics.dropped, settings.name, this.closed ? 'shutdown' : 'endpoint_limit', spans.length);
      }
      if (this.budget) this.metrics.spoolBytes.set(this.budget.bytes);
    } catch (err) {
      // The proxy's forwarding path must never see an exception from telemetry.
      this.options.log('warn', 'submit_failed', { message: (err as Error).message });
    }
  }

  health(): EndpointHealth[] {
    return [...this.endpoints.values()].map((e) => e.health());
  }

  async flush(timeoutMs: number): Promise<void> {
    await Promise.all([...this.endpoints.values()].map((e) => e.flush(timeoutMs)));
  }

  private shutdownDone?: Promise<void>;

  /** Idempotent: a second call waits for the first. */
  shutdown(timeoutMs: number): Promise<void> {
    this.closed = true;
    this.shutdownDone ??= Promise.all([...this.endpoints.values()].map((e) => e.shutdown(timeoutMs)).concat([...this.retiring])).then(
      () => undefined,
    );
    return this.shutdownDone;
  }

  private endpoint(settings: EndpointSettings, onDemand: boolean): EndpointExporter | undefined {
    const key = endpointKey(settings);
    const existing = this.endpoints.get(key);
    if (existing) {
      if (onDemand) this.touch(key);
      return existing;
    }
    if (this.closed) return undefined;
    if (onDemand) {
      if (this.onDemand.length >= MAX_PAYLOAD_ENDPOINTS) {
        // Retire the least recently used idle one; if none is idle, refuse.
        // (Least recently *created* would retire a collector every job uses
        // whenever its queue happens to be empty, and rebuild it — channel,
        // TLS handshake, token — on the next job.)
        const idle = this.onDemand.findIndex((k) => this.endpoints.get(k)?.health().queueSpans === 0);
        if (idle < 0) return undefined;
        const [old] = this.onDemand.splice(idle, 1);
        this.retire(old!);
      }
      this.onDemand.push(key);
    }
    const e = EndpointExporter.create(settings, {
      metrics: this.metrics,
      log: this.options.log,
      ...(this.options.spool && this.budget ? { spool: { dir: this.options.spool.dir, budget: this.budget } } : {}),
      ...(this.options.tokenSources?.[settings.name] ? { tokenSource: this.options.tokenSources[settings.name] } : {}),
    });
    this.endpoints.set(key, e);
    return e;
  }

  private touch(key: string): void {
    const i = this.onDemand.indexOf(key);
    if (i >= 0 && i < this.onDemand.length - 1) {
      this.onDemand.splice(i, 1);
      this.onDemand.push(key);
    }
  }

  private retire(key: string): void {
    const e = this.endpoints.get(key);
    this.endpoints.delete(key);
    if (!e) return;
    this.options.log('info', 'endpoint_evicted', { endpoint: e.name, limit: MAX_PAYLOAD_ENDPOINTS });
    const done = e.shutdown(1000).then(() => {
      this.retiring.delete(done);
      // Its gauges would stay behind otherwise, and a stale endpoint_up 0
      // fires the endpoint-down alert forever. Counters stay: they are totals.
      if ([...this.endpoints.values()].some((x) => x.name === e.name)) return;
      const labels = { endpoint: e.name };
      this.metrics.queueSpans.remove(labels);
      this.metrics.queueBytes.remove(labels);
      this.metrics.endpointUp.remove(labels);
    });
    this.retiring.add(done);
  }

  /**
   * Settles the spool directories no configured endpoint owns, once the
   * journalled jobs are known (docs/security.md#removed-endpoints): a payload
   * endpoint of a journalled job (`payloadEndpoints`, rebuilt from the job's
   * record and the current configuration) replays its spool; any other (an
   * endpoint removed from the configuration, or a payload endpoint of a job
   * that has ended) is deleted, its spans counted as dropped with reason
   * endpoint_removed, never sent. Nothing but the endpoint's name is read from
   * the directory.
   */
  settleOrphans(payloadEndpoints: readonly EndpointSettings[]): void {
    if (!this.options.spool) return;
    const root = this.options.spool.dir;
    const known = new Set([...this.endpoints.values()].map((e) => e.spoolDir).filter((d): d is string => !!d));
    const resumable = new Map(payloadEndpoints.map((e) => [spoolDirFor(root, e), e]));
    for (const dir of spoolDirs(root)) {
      if (known.has(dir)) continue;
      const settings = resumable.get(dir);
      if (settings) {
        this.endpoint(settings, true);
        continue;
      }
      const name = readEndpointName(dir) ?? 'unknown';
      const dropped = discardSpool(dir);
      countDropped(this.metrics.dropped, name, 'endpoint_removed', dropped);
      if (dropped > 0) this.options.log('warn', 'spool_endpoint_removed', { endpoint: name, spans: dropped });
    }
  }
}
