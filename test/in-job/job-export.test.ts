// The in-job export plan: which endpoint, whether to export at all, and the
// bearer token from the id_tokens variable. Pure; called directly (the export
// itself runs against a real OTLP receiver in span-command.test.ts).
import t from 'tap';
import { planJobExport } from '../../src/in-job/job-export.js';

t.test('export plan: endpoint precedence, no endpoint means no export', async (t) => {
  t.match(planJobExport({}), { kind: 'off' });
  t.match(planJobExport({ GITLAB_OTEL_ENDPOINT: 'http://127.0.0.1:1', OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector:4317' }), {
    kind: 'on',
    endpoint: { url: 'https://collector:4317' },
  });
  t.match(
    planJobExport({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' }),
    { kind: 'on', endpoint: { url: 'https://collector:4317' } },
    'no scheme means TLS',
  );
  t.match(planJobExport({ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://x' }), { kind: 'off' });
  const withToken = planJobExport({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c:4317', MY_TOKEN: 'jwt' }, { idTokenVariable: 'MY_TOKEN' });
  t.match(withToken, { kind: 'on', token: 'jwt' });
});
