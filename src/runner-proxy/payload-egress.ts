// Where GitLab's per-job collectors may point the proxy (docs/security.md#payload-endpoints).
// The negotiation asks `servesEndpoint` about each payload endpoint: one the
// egress policy refuses is left to the runner (the job keeps it in
// features.tracing, so its native span still goes there, as without the proxy).
// A name that passes but resolves to a refused address is caught at connect
// time by the transports. Either way the refusal is logged once per host and
// counted in gitlab_otel_egress_refused_total{reason}.
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { onEgressRefused } from '../telemetry/export/egress-policy.js';
import { endpointFromPayload } from '../telemetry/export/settings.js';
import { endpointWhere, servesWith, type ServesEndpoint } from './wire/negotiation.js';

/** Hosts already logged; beyond this many, refusals are still counted but no longer logged. */
const MAX_LOGGED_HOSTS = 1024;

export interface PayloadEgress {
  readonly servesEndpoint: ServesEndpoint;
  /** Stops listening for connect-time refusals (at shutdown). */
  close(): void;
}

export function payloadEgress(
  defaults: NonNullable<Parameters<typeof endpointFromPayload>[1]>,
  registry: Registry,
  log: Logger,
): PayloadEgress {
  const refused = new Counter({
    name: 'gitlab_otel_egress_refused_total',
    help: 'Payload endpoints (or the addresses their names resolve to) refused by the egress policy, by reason',
    labelNames: ['reason', 'stage'],
    registers: [registry],
  });
  const logged = new Set<string>();
  const note = (where: string, reason: string, stage: 'payload' | 'connect'): void => {
    refused.inc({ reason, stage });
    if (logged.has(where) || logged.size >= MAX_LOGGED_HOSTS) return;
    logged.add(where);
    log('warn', 'payload endpoint refused by the egress policy (telemetry.payload_endpoints); logged once per host', {
      endpoint: where,
      reason,
      stage,
    });
  };
  const serves = servesWith(defaults);
  const unsubscribe = onEgressRefused((err) => note(err.host, err.reason, 'connect'));
  return {
    servesEndpoint: (endpoint) => {
      const reason = serves(endpoint);
      if (reason === 'egress_policy') {
        const made = endpointFromPayload(endpoint, defaults);
        note(endpointWhere(endpoint.url), (!made.ok && made.refusal) || 'refused', 'payload');
      }
      return reason;
    },
    close: unsubscribe,
  };
}
