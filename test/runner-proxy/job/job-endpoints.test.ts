import t from 'tap';
import { configuredByName, configuredNames, jobEndpoints } from '../../../src/runner-proxy/job/job-endpoints.js';
import { endpointSettings } from '../../support/export.js';

const a = endpointSettings('a', 'http://127.0.0.1:4317');
const b = endpointSettings('b', 'http://127.0.0.1:4318');

t.test("a job's endpoints: the configured ones, then the usable payload endpoints; the others are named, not fatal", async (t) => {
  // A loopback collector must be named in the egress policy to be allowed (docs/security.md#payload-endpoints).
  const defaults = { egress: { allowedHosts: [{ host: '127.0.0.1' }] } };
  const got = jobEndpoints([a], [{ url: 'grpc://127.0.0.1:4317' }, { url: 'ftp://127.0.0.1/x' }, { url: 'not a url' }], defaults);
  t.equal(got.endpoints.length, 2);
  t.equal(got.endpoints[0], a, 'configured first, as configured');
  t.match(got.endpoints[1], { url: 'http://127.0.0.1:4317' }, 'grpc:// becomes a plaintext gRPC endpoint');
  t.equal(got.ignored.length, 2);
  t.match(got.ignored[0], /scheme/i);
  t.match(got.ignored[1], /does not parse/);
  t.same(jobEndpoints([a, b], []), { endpoints: [a, b], ignored: [] });
});

t.test('a journalled job names its configured endpoints; one removed since is reported missing', async (t) => {
  t.same(configuredNames([a, b], [b, endpointSettings('payload', 'http://127.0.0.1:1')]), ['b'], 'payload endpoints are not named');
  t.same(configuredByName([a, b], ['b']), { endpoints: [b], missing: false });
  t.same(configuredByName([a], ['a', 'gone']), { endpoints: [a], missing: true });
});
