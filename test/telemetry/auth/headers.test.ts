// auth/headers.ts: OTEL_EXPORTER_OTLP_(TRACES_)HEADERS in the exporter spec's
// `k=v,k2=v2` form, values percent-decoded, keys that gRPC metadata cannot carry
// from a text variable skipped by position. Pure functions, called directly.
import t from 'tap';
import { otlpHeadersFromEnv, parseOtlpHeaders } from '../../../src/telemetry/auth/headers.js';

t.test('OTEL_EXPORTER_OTLP_HEADERS', async (t) => {
  t.same(parseOtlpHeaders('api-key=a%20b%3Dc, X-Tenant = ci ,bad,=x,k=%E0%A4%A'), {
    headers: { 'api-key': 'a b=c', 'x-tenant': 'ci' },
    invalid: [2, 3, 4],
  });
  t.same(otlpHeadersFromEnv({ OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=2', OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'b=3' }).headers, {
    a: '1',
    b: '3',
  });
  t.same(parseOtlpHeaders(undefined), { headers: {}, invalid: [] });
});

t.test('binary and reserved gRPC keys are skipped, never their values', async (t) => {
  t.same(parseOtlpHeaders('trace-bin=AAAA,grpc-timeout=1S,ok=1,sp ace=2'), { headers: { ok: '1' }, invalid: [0, 1, 3] });
  t.same(parseOtlpHeaders(',, a=1 ,'), { headers: { a: '1' }, invalid: [] }, 'empty entries are not errors');
  t.same(parseOtlpHeaders('a=x=y'), { headers: { a: 'x=y' }, invalid: [] }, 'the first = splits');
  const both = otlpHeadersFromEnv({ OTEL_EXPORTER_OTLP_HEADERS: 'bad', OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'k=v,=x' });
  t.same(both, { headers: { k: 'v' }, invalid: [0, 1] }, 'invalid positions from both variables');
});
