// The one plaintext-credential rule (docs/security.md#plaintext-credentials), tested directly.
import t from 'tap';
import { checkPlaintextCredentials, credentialHeaders } from '../../../src/telemetry/auth/plaintext.js';

const base = { headers: {}, token: false, allowInsecureAuth: false };

t.test('static headers count as credentials, except tenant routing', async (t) => {
  t.same(credentialHeaders({ 'x-honeycomb-team': 'k', 'x-scope-orgid': 'tenant', authorization: 'Bearer x' }), [
    'x-honeycomb-team',
    'authorization',
  ]);
});

t.test('plaintext to a non-loopback host: tokens and credential headers refused', async (t) => {
  t.same(checkPlaintextCredentials({ ...base, url: 'http://collector.example.com:4317', token: true }), {
    ok: false,
    what: 'auth',
    names: [],
  });
  t.same(checkPlaintextCredentials({ ...base, url: 'http://collector.example.com:4317', headers: { 'dd-api-key': 'k' } }), {
    ok: false,
    what: 'headers',
    names: ['dd-api-key'],
  });
  t.same(
    checkPlaintextCredentials({ ...base, url: 'http://127.evil.example:4317', headers: { authorization: 'k' } }).ok,
    false,
    '127.evil.example is a name',
  );
  t.same(checkPlaintextCredentials({ ...base, url: 'http://10.0.0.5:4317', token: true }).ok, false, 'private addresses are a network too');
});

t.test('allowed: TLS, loopback, no credential, or allow_insecure_auth', async (t) => {
  t.ok(checkPlaintextCredentials({ ...base, url: 'https://collector.example.com', token: true, headers: { a: 'b' } }).ok);
  t.ok(checkPlaintextCredentials({ ...base, url: 'grpcs://collector.example.com', token: true }).ok);
  t.ok(checkPlaintextCredentials({ ...base, url: 'http://127.0.0.1:4317', token: true, headers: { a: 'b' } }).ok);
  t.ok(checkPlaintextCredentials({ ...base, url: 'http://[::1]:4317', token: true }).ok);
  t.ok(checkPlaintextCredentials({ ...base, url: 'http://localhost:4317', token: true }).ok);
  t.ok(checkPlaintextCredentials({ ...base, url: 'http://collector.example.com', headers: { 'x-scope-orgid': 't' } }).ok);
  t.ok(checkPlaintextCredentials({ ...base, url: 'http://collector.example.com', token: true, allowInsecureAuth: true }).ok);
});
