// `gitlab-otel onboard` arguments and environment: usage errors, URL and
// token configuration, and plaintext URLs allowed to loopback only.
import t from 'tap';
import { isLoopbackHost, parseOnboardArgs } from '../../src/onboarding/command.js';

t.test('argument and environment parsing', async (t) => {
  const env = { GITLAB_URL: 'https://gitlab.example.com/', GITLAB_TOKEN: 'x' };
  const c = parseOnboardArgs(['--group', 'acme', '--include-subgroups', '--label', 'otel', '--label', 'duo', '--concurrency', '2'], env);
  t.match(c, {
    spec: { kind: 'group', ref: 'acme', includeSubgroups: true },
    labels: ['otel', 'duo'],
    concurrency: 2,
    url: 'https://gitlab.example.com',
  });
  t.match(parseOnboardArgs(['--project', '1'], { CI_API_V4_URL: 'https://g.example/api/v4', GITLAB_TOKEN: 'x' }), {
    url: 'https://g.example',
  });
  t.equal(parseOnboardArgs(['--help'], {}), 'help');
  t.throws(() => parseOnboardArgs(['--project', '1', '--concurrency', '0'], env), { code: 'USAGE' });
  t.throws(() => parseOnboardArgs(['--project', '1', '--bogus'], env), { code: 'USAGE' });
  t.throws(() => parseOnboardArgs(['--include-subgroups', '--project', '1'], env), { code: 'USAGE' });
  t.throws(() => parseOnboardArgs(['--project', '1', '--label', 'a,b'], env), { code: 'USAGE' });
  t.throws(() => parseOnboardArgs(['--project', '1'], { GITLAB_TOKEN: 'x' }), { code: 'CONFIG_MISSING_URL' });
  t.throws(() => parseOnboardArgs(['--project', '1'], { GITLAB_URL: 'not a url', GITLAB_TOKEN: 'x' }), { code: 'CONFIG_BAD_URL' });
  t.throws(() => parseOnboardArgs(['--project', '1'], { GITLAB_URL: 'https://g' }), { code: 'CONFIG_MISSING_TOKEN' });
  t.throws(() => parseOnboardArgs(['--project', '1'], { GITLAB_URL: 'https://g', CI_JOB_TOKEN: 'j' }), { code: 'CONFIG_JOB_TOKEN_ONLY' });
  t.throws(() => parseOnboardArgs(['--project', '1', '--include-shared'], env), { code: 'USAGE' });
  t.match(parseOnboardArgs(['--group', 'g', '--include-shared', '--max-wait', '90'], env), {
    spec: { includeShared: true },
    maxWaitSeconds: 90,
  });
  t.match(parseOnboardArgs(['--group', 'g'], env), { spec: { includeShared: false }, maxWaitSeconds: 300 });
  t.throws(() => parseOnboardArgs(['--project', '1', '--max-wait', '0'], env), { code: 'USAGE' });
});

t.test('plaintext GITLAB_URL: loopback only, unless --allow-insecure-http', async (t) => {
  for (const host of ['127.0.0.1', '127.8.9.1', 'localhost', 'api.localhost', '[::1]', '[::ffff:127.0.0.1]'])
    t.ok(isLoopbackHost(host), host);
  for (const host of ['gitlab.example.com', '10.0.0.1', '[::2]', '128.0.0.1', 'localhost.example.com']) t.notOk(isLoopbackHost(host), host);
  const token = { GITLAB_TOKEN: 'glpat-x' };
  t.throws(() => parseOnboardArgs(['--project', '1'], { GITLAB_URL: 'http://gitlab.example.com', ...token }), {
    code: 'CONFIG_INSECURE_URL',
    message: /token would travel in clear[\s\S]*--allow-insecure-http/,
  });
  t.throws(() => parseOnboardArgs(['--project', '1'], { CI_SERVER_URL: 'http://10.1.2.3:8080', ...token }), {
    code: 'CONFIG_INSECURE_URL',
  });
  t.match(parseOnboardArgs(['--project', '1', '--allow-insecure-http'], { GITLAB_URL: 'http://gitlab.example.com', ...token }), {
    insecureHost: 'gitlab.example.com',
  });
  t.notOk('insecureHost' in (parseOnboardArgs(['--project', '1'], { GITLAB_URL: 'http://127.0.0.1:8080', ...token }) as object));
  t.notOk('insecureHost' in (parseOnboardArgs(['--project', '1'], { GITLAB_URL: 'https://gitlab.example.com', ...token }) as object));
});
