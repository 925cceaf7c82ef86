// The payload endpoint policy (docs/security.md#payload-endpoints), tested
// directly: address classes, the static verdict, and the connect-time filter
// with a resolver standing in for DNS. Nothing here dials an address; the
// grpc-js resolver is exercised end to end in test/security/payload-endpoints.test.ts.
import t from 'tap';
import {
  classifyAddress,
  decidePayloadEndpoint,
  EgressRefusedError,
  egressLookup,
  isLoopbackHost,
  parseHostPattern,
  resolveAllowed,
  type Resolve,
} from '../../../src/telemetry/export/egress-policy.js';

t.test('classifyAddress', async (t) => {
  const cases: [string, string | undefined][] = [
    ['8.8.8.8', 'public'],
    ['2001:4860:4860::8888', 'public'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['169.254.169.254', 'metadata'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['169.254.1.1', 'link_local'],
    ['fe80::1', 'link_local'],
    ['fe80::1%eth0', 'link_local'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['fd12:3456::1', 'private'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['ff02::1', 'reserved'],
    ['collector.example.com', undefined],
    ['127.evil.example', undefined],
  ];
  for (const [ip, want] of cases) t.equal(classifyAddress(ip), want, ip);
});

t.test('isLoopbackHost is strict', async (t) => {
  for (const h of ['localhost', 'LOCALHOST', '127.0.0.1', '127.1.2.3', '::1', '[::1]']) t.ok(isLoopbackHost(h), h);
  for (const h of ['127.evil.example', '127.0.0.1.nip.io', 'localhost.example.com', '128.0.0.1', '0.0.0.0', '10.0.0.1', ''])
    t.notOk(isLoopbackHost(h), h);
});

t.test('parseHostPattern', async (t) => {
  t.same(parseHostPattern('otel.example.com:4317'), { host: 'otel.example.com', port: 4317 });
  t.same(parseHostPattern('*.example.com:4317'), { host: '*.example.com', port: 4317 });
  t.same(parseHostPattern('Node-Collector:*'), { host: 'node-collector' });
  t.same(parseHostPattern('[::1]:4317'), { host: '::1', port: 4317 });
  for (const bad of ['otel.example.com', 'otel:0', 'otel:70000', 'http://otel:4317', '*:4317', 'a b:1'])
    t.equal(parseHostPattern(bad), undefined, bad);
});

t.test('decidePayloadEndpoint, default policy', async (t) => {
  const d = (host: string, extra: { tls?: boolean; audience?: string } = {}) =>
    decidePayloadEndpoint({}, { host, port: 4317, tls: extra.tls ?? true, ...(extra.audience ? { audience: extra.audience } : {}) });
  t.same(d('collector.example.com'), { allowed: true, explicit: false }, 'public names pass (checked again at connect time)');
  t.same(d('203.0.113.10'), { allowed: true, explicit: false });
  t.same(d('169.254.169.254'), { allowed: false, reason: 'metadata' });
  t.same(d('metadata.google.internal'), { allowed: false, reason: 'metadata' });
  t.same(d('metadata.google.internal.'), { allowed: false, reason: 'metadata' }, 'trailing dot');
  t.same(d('127.0.0.1'), { allowed: false, reason: 'loopback' });
  t.same(d('localhost'), { allowed: false, reason: 'loopback' });
  t.same(d('db.localhost'), { allowed: false, reason: 'loopback' });
  t.same(d('[::1]'), { allowed: false, reason: 'loopback' });
  t.same(d('10.0.0.5'), { allowed: false, reason: 'private' });
  t.same(d('fe80::1'), { allowed: false, reason: 'link_local' });
  t.same(
    d('collector.example.com', { tls: false, audience: 'aud' }),
    { allowed: false, reason: 'plaintext_token' },
    'ID tokens never in clear',
  );
  t.same(d('collector.example.com', { audience: 'any-audience' }), { allowed: true, explicit: false }, 'any audience without a list');
});

t.test('decidePayloadEndpoint, hardening lists', async (t) => {
  const policy = {
    allowedHosts: [
      parseHostPattern('otel.example.com:4317')!,
      parseHostPattern('*.collectors.example:4317')!,
      parseHostPattern('node-collector:4317')!,
      parseHostPattern('10.0.0.5:4317')!,
    ],
    allowedAudiences: ['https://otel.example.com'],
  };
  const d = (host: string, port = 4317, audience?: string) =>
    decidePayloadEndpoint(policy, { host, port, tls: true, ...(audience ? { audience } : {}) });
  t.same(d('otel.example.com'), { allowed: true, explicit: true });
  t.same(d('OTEL.example.com'), { allowed: true, explicit: true }, 'case-insensitive');
  t.same(d('otel.example.com', 4318), { allowed: false, reason: 'host_not_allowed' }, 'the port is part of the pattern');
  t.same(d('a.collectors.example'), { allowed: true, explicit: false }, 'wildcard: addresses still checked');
  t.same(d('collectors.example'), { allowed: false, reason: 'host_not_allowed' }, 'wildcard needs a subdomain');
  t.same(d('evil.example.com'), { allowed: false, reason: 'host_not_allowed' });
  t.same(d('10.0.0.5'), { allowed: true, explicit: true }, 'a private address the operator named');
  t.same(d('10.0.0.6'), { allowed: false, reason: 'host_not_allowed' });
  t.same(d('otel.example.com', 4317, 'https://otel.example.com'), { allowed: true, explicit: true });
  t.same(d('otel.example.com', 4317, 'https://iam.googleapis.com'), { allowed: false, reason: 'audience_not_allowed' });
});

const fakeDns =
  (table: Record<string, string[]>): Resolve =>
  async (host) => {
    const ips = table[host];
    if (!ips) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return ips.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

t.test('resolveAllowed: the addresses a name resolves to are checked', async (t) => {
  const dns = fakeDns({
    'rebind.example.com': ['169.254.169.254'],
    'internal.example.com': ['10.0.0.7', '192.168.0.2'],
    'mixed.example.com': ['10.0.0.7', '203.0.113.5'],
    'public.example.com': ['203.0.113.5', '2001:db8::1'],
    'node-collector': ['10.0.0.9'],
  });
  const open = { allowed: true, explicit: false } as const;
  await t.rejects(resolveAllowed('rebind.example.com', open, dns), { name: 'EgressRefusedError', reason: 'metadata' });
  await t.rejects(resolveAllowed('internal.example.com', open, dns), { name: 'EgressRefusedError', reason: 'private' });
  t.same(
    (await resolveAllowed('mixed.example.com', open, dns)).map((a) => a.address),
    ['203.0.113.5'],
    'only the public address is dialled',
  );
  t.same((await resolveAllowed('public.example.com', open, dns)).length, 2);
  t.same(
    (await resolveAllowed('node-collector', { allowed: true, explicit: true }, dns)).map((a) => a.address),
    ['10.0.0.9'],
    'an explicitly allowed host may be private',
  );
  await t.rejects(resolveAllowed('203.0.113.5', { allowed: false, reason: 'host_not_allowed' }, dns), {
    name: 'EgressRefusedError',
    reason: 'host_not_allowed',
  });
  await t.rejects(resolveAllowed('nowhere.example.com', open, dns), { code: 'ENOTFOUND' }, 'DNS errors pass through');
});

t.test('egressLookup: a net/http lookup that refuses with EGRESS_REFUSED', async (t) => {
  const refused: EgressRefusedError[] = [];
  const lookup = egressLookup(
    { allowed: true, explicit: false },
    fakeDns({ 'rebind.example.com': ['127.0.0.1'], 'ok.example.com': ['203.0.113.5'] }),
    (e) => refused.push(e),
  );
  const one = await new Promise<[unknown, unknown, unknown]>((resolve) => lookup('ok.example.com', {}, (e, a, f) => resolve([e, a, f])));
  t.same(one, [null, '203.0.113.5', 4]);
  const all = await new Promise<[unknown, unknown]>((resolve) => lookup('ok.example.com', { all: true }, (e, a) => resolve([e, a])));
  t.same(all, [null, [{ address: '203.0.113.5', family: 4 }]]);
  const bad = await new Promise<unknown>((resolve) => lookup('rebind.example.com', {}, (e) => resolve(e)));
  t.match(bad, { code: 'EGRESS_REFUSED', reason: 'loopback' });
  t.equal(refused.length, 1, 'the refusal is reported');
});
