// Finding 8 (issue #16): deployment defaults. The admin listener is on the pod
// IP only, behind a NetworkPolicy that lets Prometheus in, and takes an
// optional bearer token (proven here through the real proxy); images are pinned
// by digest; the sidecar runs under the RuntimeDefault seccomp profile; install
// lines skip dependencies' install scripts (docs/security.md#deployment).
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { envDefaults } from '../../src/runner-proxy/config/load.js';
import { validateConfig } from '../../src/runner-proxy/config/schema.js';
import { startRunnerProxy } from '../../src/runner-proxy/runtime.js';
import { silentLogger } from '../../src/log.js';
import { REPO } from '../support/in-job-harness.js';
import { call } from './support.js';

const read = (f: string): string => readFileSync(join(REPO, f), 'utf8');
const DIGEST = /@sha256:[0-9a-f]{64}$/;

t.test('admin bearer token: /metrics refused without it or with a wrong one, a bare /healthz for probes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-otel-admin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'token');
  const token = 'admin-token-CANARY-0123456789abcdef';
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const config = validateConfig(
    { listen: '127.0.0.1:0', admin: '127.0.0.1:0', admin_token_file: tokenFile, upstream: { url: 'http://127.0.0.1:1' } },
    envDefaults({}).defaults,
  );
  const proxy = await startRunnerProxy(config, { log: silentLogger });
  t.teardown(() => proxy.stop());
  const admin = `http://127.0.0.1:${proxy.adminAddress!.port}`;
  const bearer = (v: string) => ({ headers: { Authorization: `Bearer ${v}` } });

  const none = await call(admin, 'GET', '/metrics');
  t.equal(none.status, 401);
  t.equal(none.headers['www-authenticate'], 'Bearer');
  t.equal((await call(admin, 'GET', '/metrics', bearer('wrong'))).status, 401, 'a wrong token');
  t.equal((await call(admin, 'GET', '/metrics', bearer(`${token}x`))).status, 401, 'a longer token');
  const ok = await call(admin, 'GET', '/metrics', bearer(token));
  t.equal(ok.status, 200);
  t.match(ok.body.toString(), /gitlab_otel_proxy_requests_total/);
  t.notMatch(ok.body.toString(), token, 'the token is not in the metrics');

  const bare = await call(admin, 'GET', '/healthz');
  t.same([bare.status, JSON.parse(bare.body.toString())], [200, { status: 'ok' }], 'probes get liveness, no details');
  const full = JSON.parse((await call(admin, 'GET', '/healthz', bearer(token))).body.toString());
  t.match(full, { status: 'ok', jobs_active: 0 }, 'details with the token');
});

t.test('Helm values: pod-IP listeners, images by digest, RuntimeDefault seccomp', async (t) => {
  const v = parse(read('runner-config/helm-values.yaml')) as Record<string, any>;
  const sidecar = (v.extraContainers as any[]).find((c) => c.name === 'gitlab-otel');
  t.match(sidecar.image, DIGEST, `the proxy image is pinned by digest: ${sidecar.image}`);
  const build = /image = "([^"]+)"/.exec(v.runners.config as string)?.[1];
  t.match(build, DIGEST, `the build image is pinned by digest: ${build}`);
  t.same(sidecar.securityContext.seccompProfile, { type: 'RuntimeDefault' });
  const args = sidecar.args as string[];
  t.equal(args[args.indexOf('--admin-listen') + 1], '$(POD_IP):9464', 'admin on the pod IP only');
  t.equal(args[args.indexOf('--listen') + 1], '$(POD_IP):8080');
  const cm = parse(read('runner-config/kubernetes-configmap.yaml'));
  const proxy = parse(cm.data['gitlab-otel.yml']);
  t.equal(proxy.admin, undefined, 'no 0.0.0.0 admin in the embedded config');
});

t.test(
  'NetworkPolicy: the admin port from Prometheus only, the proxy port from build pods, build pods not to the metadata service',
  async (t) => {
    const docs = parseAllDocuments(read('runner-config/kubernetes-networkpolicy.yaml')).map((d) => d.toJS());
    const proxy = docs.find((d) => d.spec.policyTypes.includes('Ingress'));
    t.same(proxy.spec.podSelector, { matchLabels: { app: 'gitlab-runner' } });
    const rule = (port: number) => proxy.spec.ingress.find((r: any) => r.ports.some((p: any) => p.port === port));
    const admin = rule(9464);
    t.equal(admin.from.length, 1);
    t.ok(admin.from[0].namespaceSelector && admin.from[0].podSelector, 'one namespace and pod selector: Prometheus');
    t.ok(
      rule(8080).from.some((f: any) => f.podSelector?.matchExpressions?.[0]?.key === 'job.runner.gitlab.com/pod'),
      'build pods (labelled by gitlab-runner) reach the proxy',
    );
    const egress = docs.find((d) => d.spec.policyTypes.includes('Egress'));
    const blocks = egress.spec.egress.flatMap((r: any) => (r.to ?? []).filter((x: any) => x.ipBlock).map((x: any) => x.ipBlock));
    t.ok(
      blocks.some((b: any) => b.cidr === '0.0.0.0/0' && b.except.includes('169.254.169.254/32')),
      'build pods: the internet, not the metadata service',
    );
  },
);

t.test('Dockerfile: every base image by digest', async (t) => {
  const froms = [...read('component/Dockerfile').matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!);
  t.ok(froms.length >= 1);
  for (const f of froms) t.match(f, DIGEST, f);
});

t.test('install lines skip install scripts, and the package needs none at run time', async (t) => {
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  for (const s of ['preinstall', 'install', 'postinstall']) t.notOk(pkg.scripts[s], `no ${s} script`);
  for (const f of ['README.md', 'catalog.yml', 'docs/components.md']) {
    const lines = read(f)
      .split('\n')
      .filter((l) => /\bnpx\b[^\n]*gitlab-otel@|\bnpm (i|install) -g\b/.test(l));
    t.ok(lines.length > 0, `${f} has install lines`);
    for (const l of lines) t.match(l, /--ignore-scripts/, `${f}: ${l.trim().slice(0, 70)}`);
  }
});
