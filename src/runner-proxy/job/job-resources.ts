// The OpenTelemetry resource a job's spans are exported with: the proxy's own
// attributes (service.name, proxy version, configured resource attributes)
// plus what the runner said about itself in its job request. Jobs from the
// same runner share one Resource object, so the exporter batches them under
// one ResourceSpans. Pure: no I/O.
import type { Attributes } from '@opentelemetry/api';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { RESOURCE } from '../../telemetry/attributes.js';
import type { RunnerView } from '../wire/payload.js';

/** Distinct runner descriptions kept; past it the cache starts over (a fleet has a handful). */
export const MAX_CACHED_RESOURCES = 64;

export class JobResources {
  private readonly cache = new Map<string, Resource>();

  constructor(private readonly base: Attributes) {}

  /** Cached resources (bounded by MAX_CACHED_RESOURCES + 1). */
  get size(): number {
    return this.cache.size;
  }

  forRunner(runner: RunnerView): Resource {
    const key = JSON.stringify([runner.version, runner.executor, runner.platform, runner.architecture]);
    let resource = this.cache.get(key);
    if (!resource) {
      const attrs: Attributes = { ...this.base };
      if (runner.version) attrs[RESOURCE.runnerVersion] = runner.version;
      if (runner.executor) attrs[RESOURCE.runnerExecutor] = runner.executor;
      if (runner.platform) attrs[RESOURCE.runnerPlatform] = runner.platform;
      if (runner.architecture) attrs[RESOURCE.runnerArchitecture] = runner.architecture;
      resource = resourceFromAttributes(attrs);
      if (this.cache.size > MAX_CACHED_RESOURCES) this.cache.clear();
      this.cache.set(key, resource);
    }
    return resource;
  }
}
