// Which collectors a job's spans go to: the proxy's configured endpoints plus
// the endpoints GitLab put in the job payload (`otel_endpoints`, when the
// negotiation allows them). A payload endpoint that cannot be used is left out
// and named, never fatal. Pure: the caller logs.
import { endpointFromPayload, type EndpointSettings, type PayloadOtelEndpoint } from '../../telemetry/export/settings.js';

export type PayloadEndpointDefaults = Parameters<typeof endpointFromPayload>[1];

export interface JobEndpoints {
  readonly endpoints: EndpointSettings[];
  /** Why each unusable payload endpoint was left out (messages carry no URL credentials or tokens). */
  readonly ignored: string[];
}

export function jobEndpoints(
  configured: readonly EndpointSettings[],
  payload: readonly PayloadOtelEndpoint[],
  defaults?: PayloadEndpointDefaults,
): JobEndpoints {
  const endpoints = [...configured];
  const ignored: string[] = [];
  for (const entry of payload) {
    const made = endpointFromPayload(entry, defaults);
    if (made.ok) endpoints.push(made.endpoint);
    else ignored.push(made.error.message);
  }
  return { endpoints, ignored };
}

/**
 * The configured endpoints a journalled job named, as configured now. A
 * collector removed from the configuration since is reported as missing; the
 * job's spans go to the rest.
 */
export function configuredByName(
  configured: readonly EndpointSettings[],
  names: readonly string[],
): { endpoints: EndpointSettings[]; missing: boolean } {
  const wanted = new Set(names);
  const endpoints = configured.filter((e) => wanted.has(e.name));
  return { endpoints, missing: endpoints.length < wanted.size };
}

/** Names of the job's endpoints that come from the configuration (what the journal records). */
export function configuredNames(configured: readonly EndpointSettings[], endpoints: readonly EndpointSettings[]): string[] {
  const names = new Set(configured.map((e) => e.name));
  return endpoints.filter((e) => names.has(e.name)).map((e) => e.name);
}
