// tracked-job: what the journal keeps of a payload endpoint (docs/security.md#files).
import t from 'tap';
import { journalEndpoint } from '../../../src/runner-proxy/job/tracked-job.js';

t.test('journalEndpoint keeps URL origin and path, auth type and audience only', async (t) => {
  t.same(journalEndpoint({ url: 'https://user:pw@collector.example.com:4318/v1/traces?token=abc#frag' }), {
    url: 'https://collector.example.com:4318/v1/traces',
  });
  const gcp = {
    url: 'https://telemetry.googleapis.com',
    auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: '//iam.googleapis.com/x' }, secret: 'no' },
  };
  const kept = journalEndpoint(gcp);
  t.same(kept, {
    url: 'https://telemetry.googleapis.com/',
    auth: { type: 'http_bearer_gcp_oidc', http_bearer_gcp_oidc: { audience: '//iam.googleapis.com/x' } },
  });
  t.notOk(JSON.stringify(kept).includes('secret'), 'fields the proxy does not know are not copied');
  t.same(journalEndpoint({ url: 'grpc://c:4317', auth: { type: 'none' } }), { url: 'grpc://c:4317', auth: { type: 'none' } });
  t.same(journalEndpoint({ url: 'not a url' }), { url: 'not a url' }, 'an unparsable URL is kept as is (never served)');
});
