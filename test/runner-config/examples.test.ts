import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { BUCKETS, SYSTEM_FAILURE_REASONS } from '../../src/runner-proxy/job/ci-metrics.js';
import { isBuiltInStage } from '../../src/runner-proxy/job-log/log-spans.js';
import { SHIPPED_NODE_OPTIONS } from '../../src/runner-proxy/young-generation.js';
import { servedCiMetrics } from '../support/ci-metric-names.js';
import { servedProxyMetrics, type ServedProxyMetrics } from '../support/proxy-metric-names.js';
import { jobEnv, REPO, runCli } from '../support/in-job-harness.js';

const DIR = join(REPO, 'runner-config');
const read = (f: string): string => readFileSync(join(DIR, f), 'utf8');

/** Every metric name the proxy registers (prom-client `name: 'gitlab_otel_…'` in src/). */
function registeredMetrics(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith('.ts'))
        for (const m of readFileSync(join(dir, e.name), 'utf8').matchAll(/name: '(gitlab_otel_[a-z_]+)'/g)) names.add(m[1]!);
    }
  };
  walk(join(REPO, 'src'));
  return names;
}

/** Registered in src/ but not in the served-names fixture: each needs a running part the fixture does not start. */
const NOT_IN_FIXTURE: Record<string, string> = {
  gitlab_otel_telemetry_snapshot_age_seconds: 'registered by the runtime beside a started telemetry worker',
  gitlab_otel_metric_exports_total: 'registered when CI/CD metric export starts',
};

const PROXY_METRIC = /\b(gitlab_otel_[a-z_]+)/g;

/**
 * What a PromQL text says about the proxy's own metrics, checked against what they serve: every name, the label
 * of every `{label="value"}` / `!=` matcher with its value, and every label a by/on clause groups on (when the
 * query uses no CI/CD series, which the CI/CD checks cover). Returns the problems.
 */
function proxyQueryProblems(text: string, served: ServedProxyMetrics): string[] {
  const names = [...new Set([...text.matchAll(PROXY_METRIC)].map((m) => m[1]!))];
  const problems = names.filter((n) => !served.series.has(n)).map((n) => `${n} is not served`);
  for (const m of text.matchAll(/\b(gitlab_otel_[a-z_]+)\{([^}]*)\}/g)) {
    for (const [, label, op, value] of m[2]!.matchAll(/([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
      const values = served.values.get(m[1]!)?.get(label!);
      if (!values) problems.push(`${m[1]} has no label ${label}`);
      else if ((op === '=' || op === '!=') && !values.has(value!)) problems.push(`${m[1]}{${label}} is never ${value}`);
    }
  }
  if (names.length > 0 && !/\b(?:ci|cicd)_[a-z_]+/.test(text.replace(/\{[^}]*\}/g, '').replace(/\b(by|on)\s*\([^)]*\)/g, ''))) {
    const labels = new Set(names.flatMap((n) => [...(served.labels.get(n) ?? [])]));
    for (const m of text.matchAll(/\b(?:by|on)\s*\(([^)]*)\)/g)) {
      for (const label of m[1]!.split(',').map((x) => x.trim())) {
        if (label && label !== 'instance' && !labels.has(label)) problems.push(`no queried series has label ${label}`);
      }
    }
  }
  return problems;
}

/** The proxy configs among the examples: the YAML file itself and the one embedded in the Kubernetes ConfigMap. */
function proxyConfigs(): { name: string; file: string }[] {
  const dir = mkdtempSync(join(tmpdir(), 'runner-config-'));
  const out = [{ name: 'gitlab-otel.yml', file: join(DIR, 'gitlab-otel.yml') }].filter((c) => {
    try {
      readFileSync(c.file);
      return true;
    } catch {
      return false;
    }
  });
  const cm = parse(read('kubernetes-configmap.yaml')) as { data: Record<string, string> };
  const embedded = join(dir, 'configmap-gitlab-otel.yml');
  writeFileSync(embedded, cm.data['gitlab-otel.yml']!);
  out.push({ name: 'kubernetes-configmap.yaml data.gitlab-otel.yml', file: embedded });
  return out;
}

t.test('every proxy config example passes gitlab-otel check-config; a broken copy fails naming the key', async (t) => {
  const configs = proxyConfigs();
  t.ok(configs.length >= 1);
  for (const c of configs) {
    const run = await runCli(['check-config', c.file], jobEnv());
    t.equal(run.code, 0, `${c.name}: ${run.stderr}`);
    t.match(run.stdout, /: ok \(/);
  }
  const broken = join(mkdtempSync(join(tmpdir(), 'runner-config-broken-')), 'broken.yml');
  const text = readFileSync(configs[0]!.file, 'utf8')
    .replace(/^(\s*)url: https:\/\/gitlab\.example\.com$/m, '$1url: ftp://gitlab.example.com')
    .replace(/^listen: .*$/m, 'listen: nowhere');
  writeFileSync(broken, text);
  const run = await runCli(['check-config', broken], jobEnv());
  t.equal(run.code, 2);
  t.match(run.stderr, new RegExp(`${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: listen: expected HOST:PORT`));
  t.match(run.stderr, /upstream\.url: /);
});

t.test('config.toml: url is the proxy over plain HTTP, clone_url is GitLab', async (t) => {
  const toml = JSON.parse(
    execFileSync(
      'python3',
      ['-c', 'import json,sys,tomllib; print(json.dumps(tomllib.load(open(sys.argv[1],"rb"))))', join(DIR, 'config.toml')],
      { timeout: 30_000 },
    ).toString(),
  ) as {
    runners: { url: string; clone_url: string; executor: string; environment: string[] }[];
  };
  const [runner] = toml.runners;
  t.match(runner, { url: /^http:\/\/172\.17\.0\.1:\d+\/$/, clone_url: /^https:\/\//, executor: 'docker' });
  t.ok(runner!.environment.includes('FF_TIMESTAMPS=true'));
  const text = read('config.toml');
  t.match(text, /kubernetes/i, 'notes for the kubernetes executor');
  const listen = (parse(read('gitlab-otel.yml')) as { listen: string }).listen;
  t.equal(new URL(runner!.url).host, listen, 'the runner points at the address the proxy listens on (reachable from job containers)');
});

t.test('systemd unit: hardened, restarts, dedicated user, state directory for the spool', async (t) => {
  const unit = read('gitlab-otel.service');
  const directives = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) directives.set(m[1]!, [...(directives.get(m[1]!) ?? []), m[2]!]);
  }
  const one = (k: string): string | undefined => directives.get(k)?.[0];
  t.equal(one('Restart'), 'always');
  t.ok(one('DynamicUser') === 'yes' || (one('User') && one('User') !== 'root'), 'dedicated user');
  t.equal(one('ProtectSystem'), 'strict');
  t.equal(one('StateDirectory'), 'gitlab-otel');
  t.equal(one('NoNewPrivileges'), 'yes');
  t.match(one('ExecStart'), /gitlab-otel runner-proxy --config \/etc\/gitlab-otel\/gitlab-otel.yml/);
  // The young-generation bound the proxy asks for when it is missing (docs/performance.md#garbage-collection),
  // the same in the unit and in the component image (the Helm chart runs that image).
  t.ok(directives.get('Environment')?.includes(`NODE_OPTIONS=${SHIPPED_NODE_OPTIONS}`), `Environment=NODE_OPTIONS=${SHIPPED_NODE_OPTIONS}`);
  const dockerfile = readFileSync(join(REPO, 'component', 'Dockerfile'), 'utf8');
  t.match(dockerfile, new RegExp(`^ENV NODE_OPTIONS=${SHIPPED_NODE_OPTIONS}$`, 'm'), 'the image sets the same');
  t.match(unit, /\[Install\][\s\S]*WantedBy=multi-user.target/);
  // systemd's own parser, when it is installed; the binary's absence is the only complaint allowed.
  let verify: string;
  try {
    verify = execFileSync('systemd-analyze', ['verify', join(DIR, 'gitlab-otel.service')], { timeout: 30_000, stdio: 'pipe' }).toString();
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer; stdout?: Buffer };
    if (e.code === 'ENOENT') {
      t.pass('systemd-analyze verify', { skip: 'systemd-analyze is not installed' });
      return;
    }
    verify = `${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`;
  }
  const complaints = verify.split('\n').filter((l) => l.trim() && !/is not executable: No such file or directory/.test(l));
  t.same(complaints, [], 'systemd-analyze verify finds nothing else');
});

t.test('Helm values: the proxy as a sidecar of the runner manager, config and spool mounted', async (t) => {
  const v = parse(read('helm-values.yaml')) as Record<string, any>;
  t.match(v.gitlabUrl, /^http:\/\/gitlab-otel-proxy\.[a-z-]+\.svc:8080\/$/, 'build pods reach the proxy through a Service');
  t.match(v.runners.config, /clone_url = "https:\/\//);
  const sidecar = (v.extraContainers as any[]).find((c) => c.name === 'gitlab-otel');
  t.ok(sidecar);
  t.same(sidecar.args.slice(0, 1), ['runner-proxy']);
  t.match(sidecar.securityContext, { runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
  const volumes = new Set((v.volumes as any[]).map((x) => x.name));
  for (const m of sidecar.volumeMounts) t.ok(volumes.has(m.name), `volume ${m.name} exists`);
  const cm = parse(read('kubernetes-configmap.yaml'));
  t.equal(cm.metadata.name, (v.volumes as any[]).find((x) => x.configMap)?.configMap.name);
  const proxy = parse(cm.data['gitlab-otel.yml']);
  t.equal(proxy.listen, undefined, 'listen comes from the arguments');
  t.same(
    sidecar.args.slice(3),
    ['--listen', '$(POD_IP):8080', '--admin-listen', '$(POD_IP):9464'],
    'both listeners on the pod IP only (docs/security.md#deployment)',
  );
  t.same(sidecar.env.find((e: any) => e.name === 'POD_IP')?.valueFrom, { fieldRef: { fieldPath: 'status.podIP' } });
  const svc = parse(read('kubernetes-service.yaml'));
  t.equal(`http://${svc.metadata.name}.${svc.metadata.namespace}.svc:${svc.spec.ports[0].port}/`, v.gitlabUrl, 'gitlabUrl is the Service');
  t.equal(svc.spec.ports[0].targetPort, sidecar.ports.find((p: any) => p.containerPort === 8080).name);
  t.equal(proxy.spool.dir, sidecar.volumeMounts.find((m: any) => m.name === 'gitlab-otel-spool').mountPath);
});

t.test('Collector: OTLP with the oidc authenticator, batch, ClickHouse otel_traces, Tempo as the alternative', async (t) => {
  const c = parse(read('otel-collector.yaml')) as Record<string, any>;
  t.equal(c.receivers.otlp.protocols.grpc.auth.authenticator, 'oidc');
  t.match(c.extensions.oidc, { issuer_url: /^https:\/\//, audience: 'gitlab-otel' });
  t.equal(c.exporters.clickhouse.traces_table_name, 'otel_traces');
  t.ok(c.exporters['otlp/tempo'].endpoint);
  t.ok('batch' in c.processors);
  const pipe = c.service.pipelines.traces;
  t.same(pipe.receivers, ['otlp']);
  t.ok(pipe.processors.includes('batch'));
  t.ok(pipe.exporters.includes('clickhouse'));
  for (const name of [...pipe.receivers, ...pipe.processors, ...pipe.exporters]) {
    t.ok(name in { ...c.receivers, ...c.processors, ...c.exporters }, `${name} is defined`);
  }
  for (const ext of c.service.extensions) t.ok(ext in c.extensions, `extension ${ext} is defined`);
  // The audience the component puts in jobs' ID tokens is the one the collector checks.
  const { loadTemplates } = await import('../../tools/catalog/docs.js');
  const jt = loadTemplates(REPO).find((x) => x.name === 'job-telemetry')!;
  t.equal(jt.spec.inputs.audience!.default, c.extensions.oidc.audience);
});

t.test('Prometheus rules: well-formed alerts over metrics the proxy really exports', async (t) => {
  const rules = parse(read('prometheus-rules.yml')) as { groups: { name: string; rules: Record<string, any>[] }[] };
  const served = await servedCiMetrics();
  const proxy = await servedProxyMetrics();
  const alerts = rules.groups.flatMap((g) => g.rules);
  t.ok(alerts.length >= 4);
  for (const r of alerts) {
    t.match(r, {
      alert: /^[A-Za-z][A-Za-z0-9]*$/,
      expr: /\S/,
      labels: { severity: /^(info|warning|critical)$/ },
      annotations: { summary: /\S/ },
    });
    t.match(r.for, /^\d+[smh]$/);
    const expr = String(r.expr);
    let depth = 0;
    for (const ch of expr) {
      depth += ch === '(' ? 1 : ch === ')' ? -1 : 0;
      if (depth < 0) break;
    }
    t.equal(depth, 0, `${r.alert}: balanced parentheses`);
    const metrics = [...expr.matchAll(PROXY_METRIC)].map((m) => m[1]!);
    const bare = expr.replace(/\{[^}]*\}/g, '').replace(/\b(by|on|without|ignoring)\s*\([^)]*\)/g, '');
    const ciSeries = [...bare.matchAll(/\b((?:ci|cicd)_[a-z_]+)\b/g)].map((m) => m[1]!);
    t.ok(metrics.length + ciSeries.length > 0, `${r.alert} uses a proxy metric`);
    t.same(proxyQueryProblems(expr, proxy), [], `${r.alert}: names, matchers and grouping labels are what the proxy serves`);
    for (const m of ciSeries) t.ok(served.series.has(m), `${r.alert}: ${m} is served`);
    // Grouping labels of the CI/CD alerts must exist on the CI/CD series (the proxy's own metrics are prom-client's).
    for (const m of ciSeries.length > 0 ? expr.matchAll(/\b(?:by|on)\s*\(([^)]*)\)/g) : []) {
      for (const label of m[1]!
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x && x !== 'instance')) {
        t.ok(
          [...served.labels.values()].some((l) => l.has(label)),
          `${r.alert}: label ${label} exists`,
        );
      }
    }
  }
  const covered = alerts.map((a) => String(a.expr)).join('\n');
  for (const m of [
    'gitlab_otel_spans_dropped_total',
    'gitlab_otel_export_endpoint_up',
    'gitlab_otel_auth_token_failures_total',
    'gitlab_otel_upstream_errors_total',
    'gitlab_otel_unauthenticated_exchanges_total{reason="token_mismatch"}',
    'gitlab_otel_egress_refused_total{stage="connect"}',
    'gitlab_otel_egress_refused_total{stage="payload"}',
    'gitlab_otel_proxy_limit_hits_total',
    'gitlab_otel_telemetry_worker_restarts_total',
    'gitlab_otel_telemetry_worker_dropped_total',
  ]) {
    t.ok(covered.includes(m), `an alert covers ${m}`);
  }
  // Runbook-style: what happened, what to check, what to do, and where the docs say more.
  for (const a of rules.groups.find((g) => g.name === 'gitlab-otel-trust-boundaries')?.rules ?? []) {
    t.match(a.annotations.description, /What: [\s\S]*(Check|Fix|Contain)[\s\S]*docs\/security\.md#[a-z-]+/, `${a.alert}: a runbook`);
  }
});

/** promtool's output, or undefined when it is not installed (it is not a dependency; CI images may lack it). */
function promtool(args: string[]): { code: number; output: string } | undefined {
  try {
    return { code: 0, output: execFileSync('promtool', args, { timeout: 60_000, stdio: 'pipe' }).toString() };
  } catch (err) {
    const e = err as { code?: string; status?: number; stdout?: Buffer; stderr?: Buffer };
    if (e.code === 'ENOENT') return undefined;
    return { code: e.status ?? -1, output: `${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}` };
  }
}

/**
 * A directory holding rules.yml: the rules without their annotations. promtool's unit tests compare annotations too;
 * those are templates checked above, so the copy is evaluated and only the labels of the alerts are expected.
 */
function rulesWithoutAnnotations(): string {
  const dir = mkdtempSync(join(tmpdir(), 'promtool-'));
  const rules = parse(read('prometheus-rules.yml')) as { groups: { rules: Record<string, unknown>[] }[] };
  for (const g of rules.groups) for (const r of g.rules) delete r.annotations;
  writeFileSync(join(dir, 'rules.yml'), stringify(rules));
  return dir;
}

t.test('promtool: the rules load, and the trust-boundary alerts fire when, and only when, they should', async (t) => {
  const check = promtool(['check', 'rules', join(DIR, 'prometheus-rules.yml')]);
  if (!check) {
    t.pass('promtool', { skip: 'promtool is not installed' });
    return;
  }
  t.equal(check.code, 0, check.output);
  const dir = rulesWithoutAnnotations();
  const at = { instance: 'proxy:9464' };
  const series = (name: string, labels: Record<string, string>, values: string) => ({
    series: `${name}{${Object.entries({ ...at, ...labels })
      .map(([k, v]) => `${k}="${v}"`)
      .join(',')}}`,
    values,
  });
  const alert = (eval_time: string, alertname: string, ...labels: Record<string, string>[]) => ({
    eval_time,
    alertname,
    exp_alerts: labels.map((l) => ({ exp_labels: { ...at, ...l } })),
  });
  const once = (from: number) => `${'0 '.repeat(from)}1+0x${40 - from}`;
  const unit = {
    rule_files: ['rules.yml'],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: [
          series('gitlab_otel_unauthenticated_exchanges_total', { route: 'job_update', reason: 'token_mismatch' }, once(2)),
          series('gitlab_otel_unauthenticated_exchanges_total', { route: 'trace_patch', reason: 'token_unknown' }, '0+1x40'),
          series('gitlab_otel_egress_refused_total', { reason: 'metadata', stage: 'connect' }, once(3)),
          series('gitlab_otel_egress_refused_total', { reason: 'private', stage: 'payload' }, once(1)),
          series('gitlab_otel_proxy_limit_hits_total', { limit: 'client_connections' }, '0+1x40'),
          series('gitlab_otel_proxy_limit_hits_total', { limit: 'payload_bytes' }, once(1)),
          series('gitlab_otel_proxy_limit_hits_total', { limit: 'idle_connection' }, '0+5x40'),
        ],
        alert_rule_test: [
          // One forged update: firing while it is within the 10-minute window, never for token_unknown.
          alert('5m', 'GitLabOtelForgedJobExchanges', { severity: 'critical', route: 'job_update' }),
          alert('15m', 'GitLabOtelForgedJobExchanges'),
          alert('6m', 'GitLabOtelEgressRefusedAtConnect', { severity: 'warning', reason: 'metadata' }),
          alert('6m', 'GitLabOtelEgressRefused', { severity: 'info', reason: 'private' }),
          // Sustained: not before 15 minutes of hits; one payload_bytes hit and idle connections never.
          alert('10m', 'GitLabOtelClientLimitHit'),
          alert('25m', 'GitLabOtelClientLimitHit', { severity: 'warning', limit: 'client_connections' }),
        ],
      },
    ],
  };
  writeFileSync(join(dir, 'unit.yml'), stringify(unit));
  const run = promtool(['test', 'rules', join(dir, 'unit.yml')])!;
  t.equal(run.code, 0, run.output);
  t.match(run.output, /SUCCESS/);
});

/** One input series as Prometheus holds it after scraping the proxy: a served name and labels, one sample per step. */
interface ScrapedSeries {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /**
   * Cumulative values; undefined where the proxy served no such series yet (an OpenTelemetry counter appears at its
   * first measurement: its first count, or the 0 of the zero series, docs/metrics.md#zero-series).
   */
  readonly samples: readonly (number | undefined)[];
}

/** The labels Prometheus adds to every scraped series: the target's, not the proxy's. */
const TARGET_LABELS = new Set(['instance', 'job']);

/** promtool's `values` notation: runs of missing samples as `_xN`, runs of equal steps as `a+bxN` (N + 1 values). */
function promValues(samples: readonly (number | undefined)[]): string {
  const out: string[] = [];
  for (let i = 0; i < samples.length;) {
    let j = i;
    if (samples[i] === undefined) {
      while (j < samples.length && samples[j] === undefined) j += 1;
      out.push(`_x${j - i}`);
    } else {
      const step = samples[i + 1] !== undefined ? samples[i + 1]! - samples[i]! : 0;
      while (j + 1 < samples.length && samples[j + 1] !== undefined && samples[j + 1]! - samples[j]! === step) j += 1;
      out.push(`${samples[i]}+${step}x${j - i}`);
      j += 1;
    }
    i = j;
  }
  return out.join(' ');
}

const cumulative = (steps: number, perStep: (step: number) => number, from = 0): (number | undefined)[] => {
  let total = 0;
  return Array.from({ length: steps }, (_, step) => (step < from ? undefined : (total += perStep(step))));
};

/** A counter served from step `from` on, with the count of each step already in that step's sample. */
function counter(name: string, labels: Record<string, string>, steps: number, perStep: (step: number) => number, from = 0): ScrapedSeries {
  return { name, labels, samples: cumulative(steps, perStep, from) };
}

/** The _bucket (one per bound, and +Inf), _count and _sum series of a histogram fed `observed(step)` each step. */
function histogram(
  name: string,
  labels: Record<string, string>,
  bounds: readonly number[],
  steps: number,
  observed: (step: number) => number[],
): ScrapedSeries[] {
  const buckets = [...bounds.map((b) => ({ le: String(b), max: b })), { le: '+Inf', max: Infinity }];
  return [
    ...buckets.map((b) => counter(`${name}_bucket`, { ...labels, le: b.le }, steps, (s) => observed(s).filter((v) => v <= b.max).length)),
    counter(`${name}_count`, labels, steps, (s) => observed(s).length),
    counter(`${name}_sum`, labels, steps, (s) => observed(s).reduce((a, b) => a + b, 0)),
  ];
}

const promSeries = (s: ScrapedSeries) => ({
  series: `${s.name}{${Object.entries(s.labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`,
  values: promValues(s.samples),
});

t.test('promValues: runs of missing samples and of equal steps in promtool notation', async (t) => {
  t.equal(promValues([undefined, undefined, 1, 2, 3, 3, 3, 10]), '_x2 1+1x2 3+0x1 10+0x0');
  t.equal(promValues([0, 5, 10]), '0+5x2');
});

t.test('promtool: the CI/CD alerts of issue #14 fire when, and only when, they should', async (t) => {
  if (!promtool(['--version'])) {
    t.pass('promtool', { skip: 'promtool is not installed' });
    return;
  }
  const dir = rulesWithoutAnnotations();
  const served = await servedCiMetrics();
  const target = (instance: string) => ({ instance, job: 'gitlab-otel' });
  const docker = { ci_runner_executor: 'docker' };
  const alert = (eval_time: string, alertname: string, ...labels: Record<string, string>[]) => ({
    eval_time,
    alertname,
    exp_alerts: labels.map((l) => ({ exp_labels: l })),
  });
  const repeat = (n: number, seconds: number): number[] => Array<number>(n).fill(seconds);

  // Queue time, 25 jobs a minute on each proxy for 130 minutes. GitLab reports whole seconds; 45 s and 250 s land in
  // the (30, 60] and (120, 300] buckets, 450 s in (300, 600].
  const minutes = 130;
  const queue = (instance: string, observed: (minute: number) => number[]) =>
    histogram('ci_job_queue_duration', { ...target(instance), ...docker }, BUCKETS.queue, minutes, observed);
  const within = (m: number, from: number, to: number) => m >= from && m < to;
  const queueSeries = [
    // Sustained: from minute 20 to 100, one job in five waits 450 s: p95 = 300 + (0.95 - 0.8) / 0.2 × 300 = 525 s.
    ...queue('sustained:9464', (m) => (within(m, 20, 100) ? [...repeat(20, 45), ...repeat(5, 450)] : repeat(25, 45))),
    // Just below: one job in 25 (4 %) waits 450 s, the rest 250 s: p95 = 120 + 0.95 / 0.96 × 180 ≈ 298 s, all along.
    ...queue('below:9464', () => [...repeat(24, 250), 450]),
    // A spike: every job waits 450 s for 10 minutes (minutes 20 to 30), fast before and after.
    ...queue('spike:9464', (m) => (within(m, 20, 30) ? repeat(25, 450) : repeat(25, 45))),
  ];

  // System failures over 150 minutes. ci_jobs_total counts every finished job by status, result and failure reason;
  // cicd_system_errors_total only the system failure reasons (SYSTEM_FAILURE_REASONS).
  const jobs = (instance: string, outcome: Record<string, string>, perMinute: number, from = 0, to = Infinity) =>
    counter('ci_jobs_total', { ...target(instance), ...docker, ...outcome }, 150, (m) => (m < to ? perMinute : 0), from);
  // The proxy serves an executor's system-error series at 0 from its first job on (docs/metrics.md#zero-series), so the
  // series is there from minute 0 and its first failure is an increase; `servedFrom` > 0 is the series served only from
  // its first count, as before that.
  const systemErrors = (instance: string, failures: (minute: number) => number, servedFrom = 0) =>
    counter(
      'cicd_system_errors_total',
      { ...target(instance), cicd_system_component: 'gitlab-runner', error_type: 'runner_system_failure', ...docker },
      150,
      failures,
      servedFrom,
    );
  const success = { ci_job_status: 'success', cicd_pipeline_task_run_result: 'success' };
  const failed = (reason: string) => ({ ci_job_status: 'failed', cicd_pipeline_task_run_result: 'failure', ci_job_failure_reason: reason });
  t.ok(SYSTEM_FAILURE_REASONS.has('runner_system_failure') && !SYSTEM_FAILURE_REASONS.has('script_failure'));
  const failureSeries = [
    // 1 job in 33 (3 %) a system failure from minute 30 to 100; ci_jobs' failed series appears with the first one.
    jobs('failing:9464', success, 32),
    jobs('failing:9464', failed('runner_system_failure'), 1, 30, 100),
    systemErrors('failing:9464', (m) => (within(m, 30, 100) ? 1 : 0)),
    // Half the jobs fail their script, none for the system.
    jobs('scripts:9464', success, 10),
    jobs('scripts:9464', failed('script_failure'), 10),
    // 1 job in 66 (1.5 %) a system failure, all along.
    jobs('below:9464', success, 65),
    jobs('below:9464', failed('runner_system_failure'), 1),
    systemErrors('below:9464', () => 1),
    // A quiet proxy after a restart: one job a minute, one system failure at minute 30 (1 of 30 in the window, 3.3 %).
    jobs('restarted:9464', success, 1),
    jobs('restarted:9464', failed('runner_system_failure'), 1, 30, 31),
    systemErrors('restarted:9464', (m) => (m === 30 ? 1 : 0)),
    // The same, with the system-error series served only from its first count: rate() takes that sample as the
    // baseline, so the failure is never seen. What the zero series are for.
    jobs('first-at-one:9464', success, 1),
    jobs('first-at-one:9464', failed('runner_system_failure'), 1, 30, 31),
    systemErrors('first-at-one:9464', (m) => (m === 30 ? 1 : 0), 30),
  ];

  // Stage durations, hourly for 181 hours (a week and 13 hours); from hour 170 on, some stages are slower than in
  // the same hours a week before. 50 s lands in (30, 60], p95 = 58.5 s; 100 s in (60, 120].
  const hours = 181;
  const stage = (ci_stage_name: string, observed: (hour: number) => number[]) =>
    histogram(
      'ci_stage_duration',
      { ...target('proxy:9464'), ci_stage_name, ci_stage_status: 'success', ...docker },
      BUCKETS.stage,
      hours,
      observed,
    );
  const stageSeries = [
    // 30 a hour, now 100 s: p95 117 s, 2× the week before.
    ...stage('step_script', (h) => repeat(30, h >= 170 ? 100 : 50)),
    // 40 a hour, now 3 of them 100 s: p95 = 60 + 0.025 / 0.075 × 60 = 80 s, 1.37× the week before.
    ...stage('get_sources', (h) => (h >= 170 ? [...repeat(37, 50), ...repeat(3, 100)] : repeat(40, 50))),
    // 30 a hour, slow from hour 4 to 16 of every week (a weekly load): the same p95 as the same hours a week before.
    ...stage('prepare_executor', (h) => repeat(30, h % 168 >= 4 && h % 168 < 16 ? 100 : 50)),
    // 3 a hour (18 in 6 h), now 200 s instead of 20 s: p95 10× the week before, on too few jobs.
    ...stage('restore_cache', (h) => repeat(3, h >= 170 ? 200 : 20)),
  ];
  for (const name of ['step_script', 'get_sources', 'prepare_executor', 'restore_cache'])
    t.ok(isBuiltInStage(name), `${name} is a stage name the proxy serves`);

  // Every input series has a name and labels the proxy serves (test/support/ci-metric-names.ts), plus the target's.
  for (const s of [...queueSeries, ...failureSeries, ...stageSeries]) {
    t.ok(served.series.has(s.name), `${s.name} is served`);
    const unknown = Object.keys(s.labels).filter((k) => !TARGET_LABELS.has(k) && !served.labels.get(s.name)?.has(k));
    t.same(unknown, [], `${s.name}: labels the proxy serves`);
  }

  const queueTime = (instance: string) => ({ severity: 'warning', instance });
  const systemFailures = (instance: string) => ({ severity: 'critical', instance });
  const minuteTests = {
    rule_files: ['rules.yml'],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: queueSeries.map(promSeries),
        alert_rule_test: [
          alert('15m', 'GitLabCiQueueTimeHigh'),
          // The rise and the spike both began at minute 20: neither has lasted the 30 minutes of `for:` yet.
          alert('45m', 'GitLabCiQueueTimeHigh'),
          // The sustained rise fires; the 10-minute spike, over for 25 minutes, has not.
          alert('55m', 'GitLabCiQueueTimeHigh', queueTime('sustained:9464')),
          alert('99m', 'GitLabCiQueueTimeHigh', queueTime('sustained:9464')),
          // Fast again since minute 100, out of the 15-minute window by 115.
          alert('120m', 'GitLabCiQueueTimeHigh'),
        ],
      },
      {
        interval: '1m',
        input_series: failureSeries.map(promSeries),
        alert_rule_test: [
          alert('25m', 'GitLabCiSystemFailures'),
          // The restarted proxy's one failure, in the window from minute 30 to 59: firing after the 15 minutes of `for:`.
          alert('44m', 'GitLabCiSystemFailures'),
          alert('50m', 'GitLabCiSystemFailures', systemFailures('restarted:9464')),
          // 3 % of the last 30 minutes' jobs from about minute 50 on: pending, not yet 15 minutes.
          alert('60m', 'GitLabCiSystemFailures'),
          alert('70m', 'GitLabCiSystemFailures', systemFailures('failing:9464')),
          alert('100m', 'GitLabCiSystemFailures', systemFailures('failing:9464')),
          // No system failure since minute 100: under 2 % of the window from about minute 111.
          alert('120m', 'GitLabCiSystemFailures'),
          alert('149m', 'GitLabCiSystemFailures'),
        ],
      },
    ],
  };
  // A week and more of input: rules evaluated every 5 minutes, which is what makes this quick.
  const weekTests = {
    rule_files: ['rules.yml'],
    evaluation_interval: '5m',
    tests: [
      {
        interval: '1h',
        input_series: stageSeries.map(promSeries),
        alert_rule_test: [
          // No week-old data to compare with yet, then the same durations as a week before.
          alert('100h', 'GitLabCiStageSlowerThanLastWeek'),
          alert('169h', 'GitLabCiStageSlowerThanLastWeek'),
          // Slower from hour 170: pending for the hour of `for:`.
          alert('170h30m', 'GitLabCiStageSlowerThanLastWeek'),
          alert('172h', 'GitLabCiStageSlowerThanLastWeek', { severity: 'info', ci_stage_name: 'step_script' }),
          alert('180h', 'GitLabCiStageSlowerThanLastWeek', { severity: 'info', ci_stage_name: 'step_script' }),
        ],
      },
    ],
  };
  writeFileSync(join(dir, 'ci-minutes.yml'), stringify(minuteTests));
  writeFileSync(join(dir, 'ci-week.yml'), stringify(weekTests));
  const run = promtool(['test', 'rules', join(dir, 'ci-minutes.yml'), join(dir, 'ci-week.yml')])!;
  t.equal(run.code, 0, run.output);
  t.equal(run.output.match(/SUCCESS/g)?.length, 2, run.output);
});

t.test('the served-names fixture covers every metric the proxy registers, and its checks catch a wrong name or label', async (t) => {
  const proxy = await servedProxyMetrics();
  const missing = [...registeredMetrics()].filter((n) => !proxy.series.has(n) && !(n in NOT_IN_FIXTURE));
  t.same(missing, [], 'registered in src/ and served by the fixture');
  for (const n of Object.keys(NOT_IN_FIXTURE)) t.ok(registeredMetrics().has(n), `${n} is still registered`);
  t.same(proxyQueryProblems('sum by (instance, limit) (rate(gitlab_otel_proxy_limit_hits_total{limit="payload_bytes"}[5m]))', proxy), []);
  t.same(proxyQueryProblems('rate(gitlab_otel_proxy_limit_hit_total[5m])', proxy), ['gitlab_otel_proxy_limit_hit_total is not served']);
  t.same(proxyQueryProblems('rate(gitlab_otel_proxy_limit_hits_total{limit="payload_byte"}[5m])', proxy), [
    'gitlab_otel_proxy_limit_hits_total{limit} is never payload_byte',
  ]);
  t.same(proxyQueryProblems('rate(gitlab_otel_egress_refused_total{route="x"}[5m])', proxy), [
    'gitlab_otel_egress_refused_total has no label route',
  ]);
  t.same(proxyQueryProblems('sum by (route) (rate(gitlab_otel_egress_refused_total[5m]))', proxy), ['no queried series has label route']);
});

t.test('Grafana dashboard: ClickHouse queries over otel_traces, Prometheus queries over the CI/CD metrics really served', async (t) => {
  const d = JSON.parse(read('grafana-dashboard.json')) as { title: string; uid: string; panels: any[] };
  t.ok(d.title && d.uid);
  const titles = d.panels.map((p) => String(p.title).toLowerCase()).join('\n');
  for (const want of [
    'job duration',
    'stage duration',
    'failure rate',
    'slowest stages',
    'queue time',
    'system failure rate',
    'previous week',
    'artifact bytes',
    'unauthenticated exchanges',
    'refused by the egress policy',
    'client limits hit',
    'collectors left to the runner',
    'job router discovery declined',
    'telemetry worker restarts',
  ])
    t.match(titles, want);
  const served = await servedCiMetrics();
  const proxy = await servedProxyMetrics();
  const ids = new Set<number>();
  let prometheusPanels = 0;
  for (const p of d.panels) {
    t.notOk(ids.has(p.id), `panel id ${p.id} unique`);
    ids.add(p.id);
    if (p.type === 'row') {
      t.same(p.panels, [], `${p.title}: an expanded row holds no panels of its own`);
      continue;
    }
    const proxyExprs =
      p.datasource.type === 'prometheus' ? (p.targets as any[]).filter((q) => /\bgitlab_otel_[a-z_]+/.test(String(q.expr))) : [];
    if (proxyExprs.length > 0) {
      // Units: a rate() of a counter is per second; an increase() over a window is a count.
      const unit = p.fieldConfig.defaults.unit;
      if (proxyExprs.every((q) => /\brate\(/.test(q.expr))) t.ok(['reqps', 'cps', 'ops'].includes(unit), `${p.title}: a per-second unit`);
      else t.equal(unit, 'short', `${p.title}: counts`);
    }
    t.ok(['grafana-clickhouse-datasource', 'prometheus'].includes(p.datasource.type), `${p.title}: a known datasource`);
    for (const q of p.targets) {
      const text = String(p.datasource.type === 'prometheus' ? q.expr : q.rawSql);
      t.equal((text.match(/\(/g) ?? []).length, (text.match(/\)/g) ?? []).length, `${p.title}: balanced parentheses`);
      if (p.datasource.type === 'grafana-clickhouse-datasource') {
        t.match(text, /FROM otel\.otel_traces/);
        t.match(text, /\$__timeFilter\(Timestamp\)/);
        continue;
      }
      prometheusPanels += 1;
      // Metric names: what is left once label matchers {…} and grouping clauses by/on (…) are taken out.
      const bare = text.replace(/\{[^}]*\}/g, '').replace(/\b(by|on|without|ignoring)\s*\([^)]*\)/g, '');
      const names = [...bare.matchAll(/\b((?:ci|cicd)_[a-z_]+)\b/g)].map((m) => m[1]!);
      const proxyNames = [...text.matchAll(PROXY_METRIC)].map((m) => m[1]!);
      t.ok(names.length + proxyNames.length > 0, `${p.title}: queries a CI/CD metric or one of the proxy's own`);
      t.same(proxyQueryProblems(text, proxy), [], `${p.title}: names, matchers and grouping labels are what the proxy serves`);
      if (names.length === 0) continue;
      for (const n of names) t.ok(served.series.has(n), `${p.title}: ${n} is served on /metrics`);
      for (const m of text.matchAll(/\b((?:ci|cicd|error)_[a-z_]+)\s*=/g)) {
        t.ok(
          [...served.labels.values()].some((l) => l.has(m[1]!)),
          `${p.title}: label ${m[1]} exists`,
        );
      }
      for (const m of text.matchAll(/by \(([^)]*)\)/g)) {
        for (const label of m[1]!.split(',').map((x) => x.trim())) {
          if (label === 'instance') continue;
          t.ok(
            [...served.labels.values()].some((l) => l.has(label)),
            `${p.title}: grouping label ${label} exists`,
          );
        }
      }
    }
  }
  t.ok(prometheusPanels >= 6, 'the CI/CD metric panels are there');
  const queried = d.panels.flatMap((p) => (p.targets ?? []).map((q: any) => String(q.expr ?? ''))).join('\n');
  for (const m of [
    'gitlab_otel_unauthenticated_exchanges_total',
    'gitlab_otel_egress_refused_total',
    'gitlab_otel_proxy_limit_hits_total',
    'gitlab_otel_payload_endpoints_left_to_runner_total',
    'gitlab_otel_router_discovery_declined_total',
    'gitlab_otel_telemetry_worker_restarts_total',
    'gitlab_otel_telemetry_worker_dropped_total',
  ])
    t.ok(queried.includes(m), `a panel shows ${m}`);
});
