// Exporting the one or two spans a job command produces. A job process lives
// for one command, so there is no queue, spool or retry loop: one bounded
// OTLP/gRPC or OTLP/HTTP call (OTEL_EXPORTER_OTLP_PROTOCOL), reusing the
// proxy's transports (TLS, per-call tokens, loopback-only plaintext tokens).
// Whatever happens, the outcome is a value, never an exception: telemetry must not fail a job.
import { detectResources, envDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { EndpointConfigError } from '../telemetry/auth/channel.js';
import { otlpHeadersFromEnv } from '../telemetry/auth/headers.js';
import { jwtExpiry, type TokenSource } from '../telemetry/auth/token.js';
import { appendTracesPath, endpointFromEnv, protocolFromEnv } from '../telemetry/export/env-endpoint.js';
import { createTransport, serializeSpans, type OtlpTransport } from '../telemetry/export/otlp-client.js';
import { DEFAULT_QUEUE, DEFAULT_RETRY, type EndpointSettings } from '../telemetry/export/settings.js';
import { RESOURCE } from '../telemetry/attributes.js';
import { toReadableSpan, type SpanRecord } from '../telemetry/spans.js';
import type { Env } from './trace-context.js';

/** The GitLab `id_tokens` variable the components declare by default. */
export const DEFAULT_ID_TOKEN_VARIABLE = 'GITLAB_OTEL_ID_TOKEN';
export const DEFAULT_EXPORT_TIMEOUT_MS = 2000;
export const DEFAULT_SERVICE_NAME = 'gitlab-ci';

export type JobExportPlan =
  | { readonly kind: 'off'; readonly reason: string }
  | {
      readonly kind: 'on';
      readonly endpoint: EndpointSettings;
      /** The bearer token, when the id_tokens variable is set. Never logged. */
      readonly token?: string;
      /** Secret-free notes for stderr (e.g. skipped header entries). */
      readonly notes: readonly string[];
    };

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Decides from the job's environment whether and where to export. Like
 * otel-cli, no endpoint means no export ("first, do no harm"): the SDK's
 * localhost:4317 default would only cost a failed connection in every job.
 */
export function planJobExport(env: Env, options: { idTokenVariable?: string; timeoutMs?: number } = {}): JobExportPlan {
  // GITLAB_OTEL_ENDPOINT comes from the job-telemetry component's `endpoint` input; the standard variables win.
  const fromEnv = endpointFromEnv(env, 'GITLAB_OTEL_ENDPOINT');
  if (!fromEnv)
    return { kind: 'off', reason: 'no OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT or GITLAB_OTEL_ENDPOINT set' };
  // OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL, as the SDKs read it (docs/export.md#environment).
  const protocol = protocolFromEnv(env);
  if (!protocol.ok) return { kind: 'off', reason: `${protocol.variable}: ${protocol.message}` };
  const http = protocol.protocol === 'http/protobuf';
  // Same rule as the OTel exporter: no scheme means TLS.
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(fromEnv.url) ? fromEnv.url : `https://${fromEnv.url}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch {
    return { kind: 'off', reason: 'the OTLP endpoint URL does not parse' };
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return {
      kind: 'off',
      reason: `OTLP endpoint scheme '${parsed.protocol.replace(/:$/, '')}' is not http:// or https:// (${http ? 'OTLP/HTTP' : 'OTLP/gRPC'})`,
    };
  }
  // OTLP/HTTP: the generic variable gets /v1/traces appended, the traces-specific one is used as is.
  const httpUrl = fromEnv.perSignal ? `${parsed.protocol}//${parsed.host}${parsed.pathname}` : appendTracesPath(parsed.toString());
  const notes: string[] = [];
  const headers = otlpHeadersFromEnv(env);
  if (headers.invalid.length > 0) notes.push(`skipped ${headers.invalid.length} malformed OTEL_EXPORTER_OTLP_HEADERS entr(y/ies)`);

  const variable = options.idTokenVariable ?? env.GITLAB_OTEL_ID_TOKEN_VARIABLE ?? DEFAULT_ID_TOKEN_VARIABLE;
  let token: string | undefined;
  if (!VARIABLE_NAME.test(variable)) notes.push(`ignored --id-token-variable: '${variable}' is not a variable name`);
  else token = env[variable]?.trim() || undefined;
  if (!token && options.idTokenVariable) notes.push(`ID token variable ${variable} is empty or unset; exporting without a bearer token`);

  // The in-job form of allow_insecure_auth (docs/security.md#plaintext-credentials): said on stderr when set.
  const allowInsecureAuth = env.GITLAB_OTEL_ALLOW_INSECURE_AUTH === 'true';
  if (allowInsecureAuth && parsed.protocol === 'http:') {
    notes.push(`GITLAB_OTEL_ALLOW_INSECURE_AUTH=true: credentials may go to ${parsed.host} in clear`);
  }
  const caFile = env.OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE || env.OTEL_EXPORTER_OTLP_CERTIFICATE || undefined;
  const certFile = env.OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE || env.OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE || undefined;
  const keyFile = env.OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY || env.OTEL_EXPORTER_OTLP_CLIENT_KEY || undefined;
  const tls = parsed.protocol === 'https:';
  const endpoint: EndpointSettings = {
    name: http ? `${parsed.host}${new URL(httpUrl).pathname}` : `${parsed.hostname}:${parsed.port || '4317'}`,
    ...(http ? { protocol: 'http/protobuf' as const } : {}),
    url: http ? httpUrl : `${parsed.protocol}//${parsed.host}`,
    compression: 'none',
    timeoutMs: options.timeoutMs ?? DEFAULT_EXPORT_TIMEOUT_MS,
    headers: headers.headers,
    allowInsecureAuth,
    auth: { type: 'none' },
    queue: DEFAULT_QUEUE,
    retry: DEFAULT_RETRY,
    ...(tls ? { tls: { caFile, certFile, keyFile, insecureSkipVerify: false } } : {}),
  };
  return { kind: 'on', endpoint, ...(token ? { token } : {}), notes };
}

/** `service.name` defaults to gitlab-ci; OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES override (read by the SDK's env detector). */
export function jobResource(): Resource {
  return resourceFromAttributes({ [RESOURCE.serviceName]: DEFAULT_SERVICE_NAME }).merge(detectResources({ detectors: [envDetector] }));
}

function staticToken(value: string): TokenSource {
  return { kind: 'gitlab_id_token', fetch: () => Promise.resolve({ value, expiresAt: jwtExpiry(value) }) };
}

export type JobExportResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** One bounded export. Resolves within about `timeoutMs`; never rejects. */
export async function exportJobSpans(spans: SpanRecord[], plan: JobExportPlan & { kind: 'on' }): Promise<JobExportResult> {
  let client: OtlpTransport | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    // OTLP/gRPC or OTLP/HTTP, with the proxy's TLS and plaintext-credential rules.
    client = createTransport(plan.endpoint, {}, plan.token ? staticToken(plan.token) : undefined);
    const resource = jobResource();
    const body = serializeSpans(spans.map((s) => toReadableSpan(s, resource)));
    const deadline = new Promise<JobExportResult>((resolve) => {
      // The call has its own deadline; this guards the parts around it (token, TLS handshake).
      timer = setTimeout(
        () => resolve({ ok: false, reason: `no answer within ${plan.endpoint.timeoutMs} ms` }),
        plan.endpoint.timeoutMs + 250,
      );
    });
    const call = client.export(body, plan.endpoint.timeoutMs).then((outcome): JobExportResult => {
      switch (outcome.kind) {
        case 'ok':
          return { ok: true };
        case 'partial':
          return outcome.rejectedSpans > 0
            ? { ok: false, reason: `collector rejected ${outcome.rejectedSpans} span(s): ${outcome.message}` }
            : { ok: true };
        case 'error':
          return { ok: false, reason: outcome.message };
      }
    });
    return await Promise.race([call, deadline]);
  } catch (err) {
    const reason = err instanceof EndpointConfigError ? err.message : `export failed: ${(err as Error).message}`;
    return { ok: false, reason };
  } finally {
    if (timer) clearTimeout(timer);
    client?.close();
  }
}
