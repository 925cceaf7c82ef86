import t from 'tap';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OtlpReceiver } from '../../src/telemetry/receiver.js';
import { loadTemplates } from '../../tools/catalog/docs.js';
import {
  interpolate,
  parseComponentTemplate,
  resolveExtends,
  validateComponentJobs,
  type ComponentTemplate,
} from '../../tools/catalog/component-template.js';
import { resolveInputs } from '../../tools/catalog/inputs.js';
import { gitlabTraceId, pipelineRootSpanId } from '../../src/telemetry/pipeline-ids.js';
import { cliOnPath, jobEnv, REPO, runProcess } from '../support/in-job-harness.js';

const templates = loadTemplates(REPO);
const byName = (n: string): ComponentTemplate => templates.find((x) => x.name === n)!;

/** Non-default values for every input, to interpolate something other than the defaults. */
const SAMPLES: Record<string, Record<string, unknown>> = {
  onboard: {
    as: 'otel-onboarding',
    stage: 'deploy',
    rules: [{ if: '$CI_PIPELINE_SOURCE == "schedule"' }],
    manual_rules: [{ when: 'manual', allow_failure: true }],
    target: 'group:platform 42 other/project',
    include_subgroups: false,
    token_variable: 'OTEL_ONBOARDING_TOKEN',
    labels: 'observability,otel',
    dry_run: true,
    concurrency: 2,
    image: 'registry.example.com/gitlab-otel:1.2.3',
  },
  'job-telemetry': {
    as: 'trace-root',
    stage: 'cleanup',
    rules: [{ if: '$CI_COMMIT_BRANCH' }],
    audience: 'https://otel.example.com',
    token_variable: 'OTEL_TOKEN',
    endpoint: 'https://otel.example.com:4317',
    image: 'registry.example.com/gitlab-otel:1.2.3',
  },
};

function render(tpl: ComponentTemplate, given: Record<string, unknown>): { config: Record<string, unknown>; used: Set<string> } {
  const used = new Set<string>();
  const inputs = resolveInputs(tpl.spec.inputs, given, `${tpl.path}: inputs`);
  const config = interpolate(tpl.body, { inputs, where: tpl.path, used }) as Record<string, unknown>;
  return { config, used };
}

t.test('templates/ holds the two components, each a spec: document, --- and jobs', async (t) => {
  t.same(templates.map((x) => x.name).sort(), ['job-telemetry', 'onboard']);
  for (const tpl of templates) {
    t.ok(Object.keys(tpl.spec.inputs).length > 0, `${tpl.name} has inputs`);
    for (const [name, spec] of Object.entries(tpl.spec.inputs)) {
      t.ok(spec.description.length > 10, `${tpl.name}.${name} is described`);
      t.ok(['string', 'number', 'boolean', 'array'].includes(spec.type), `${tpl.name}.${name} is typed`);
    }
    t.ok(SAMPLES[tpl.name], `sample inputs exist for ${tpl.name}`);
  }
});

t.test('interpolated with defaults and with sample inputs, every template yields valid jobs', async (t) => {
  for (const tpl of templates) {
    for (const [label, given] of [
      ['defaults', {}],
      ['samples', SAMPLES[tpl.name]!],
    ] as const) {
      const { config, used } = render(tpl, given);
      t.same(validateComponentJobs(config), [], `${tpl.name} (${label}): no problems`);
      t.same(
        [...Object.keys(tpl.spec.inputs)].filter((n) => !used.has(n)),
        [],
        `${tpl.name}: every input is used`,
      );
      for (const name of Object.keys(config).filter((n) => !n.startsWith('.'))) {
        const job = resolveExtends(config, name);
        t.ok(Array.isArray(job.rules), `${tpl.name}/${name}: rules is an array`);
        t.type(job.stage, 'string', `${tpl.name}/${name}: stage set`);
        t.ok(job.script, `${tpl.name}/${name}: has a script after extends`);
      }
    }
    // GitLab's advice: job names and stage come from inputs. Hidden jobs too:
    // they merge across includes just like visible ones (docs/gitlab-api.md#job-names).
    const raw = tpl.body as Record<string, Record<string, unknown>>;
    for (const [name, job] of Object.entries(raw)) {
      t.match(name, /^\.?\$\[\[ inputs\.as \]\]/, `${tpl.name}: job name ${name} starts with inputs.as`);
      if (job.stage !== undefined) t.equal(job.stage, '$[[ inputs.stage ]]');
    }
  }
});

t.test('each component can be included twice with different settings: no job name is shared', async (t) => {
  for (const tpl of templates) {
    const first = render(tpl, {}).config;
    const second = render(tpl, SAMPLES[tpl.name]!).config;
    const shared = Object.keys(first).filter((name) => name in second);
    t.same(shared, [], `${tpl.name}: the default include and an include with as=${String(SAMPLES[tpl.name]!.as)} share no job`);
    for (const config of [first, second]) {
      for (const name of Object.keys(config)) {
        const job = config[name] as { extends?: string | string[] };
        for (const parent of [job.extends ?? []].flat()) t.ok(parent in config, `${tpl.name}/${name} extends ${parent} of its own include`);
      }
    }
    // What merging would look like: the second include's jobs leave the first's untouched.
    const merged = { ...first, ...second };
    for (const name of Object.keys(first)) t.same(merged[name], first[name], `${tpl.name}/${name} unchanged by the second include`);
  }
});

t.test('the validator catches what GitLab would refuse', async (t) => {
  const bad = (body: string): string[] => {
    const tpl = parseComponentTemplate(`spec:\n  inputs: {}\n---\n${body}`, 'templates/bad.yml');
    return validateComponentJobs(interpolate(tpl.body, { inputs: {}, where: 'x' })).map((p) => `${p.path}: ${p.message}`);
  };
  t.match(bad('stages: [a]\njob: {script: [x]}'), [/^stages: global keyword/]);
  t.match(bad('variables: {A: b}\njob: {script: [x]}'), [/^variables: global keyword/]);
  t.match(bad('job: {script: [x], only: [main]}'), [/job\.only: not a job keyword/]);
  t.match(bad('job: {script: [x], rules: {if: $A}}'), [/job\.rules: rules must be an array/]);
  t.match(bad('job: {script: [x], rules: [{if: $A, when: sometimes}]}'), [/job\.rules\[0\]\.when: unknown when/]);
  t.match(bad('job: {script: [x], rules: [{if: $A, stage: x}]}'), [/job\.rules\[0\]\.stage: not a rules keyword/]);
  t.match(bad('job: {stage: test}'), [/job\.script: a job needs script/]);
  t.match(bad('job: {script: [x], variables: {A: true}}'), [/job\.variables\.A: variable values must be strings/]);
  t.match(bad('job: {script: [x], id_tokens: {T: {aud: ""}}}'), [/job\.id_tokens\.T/]);
  t.match(bad('job: {extends: .nope, script: [x]}'), [/extends unknown job \.nope/]);

  t.throws(() => parseComponentTemplate('spec:\n  inputs: {a: {type: string}}\n---\nj: {script: [x]}', 'templates/x.yml'), {
    code: 'SPEC_INVALID',
    message: /a\.description/,
  });
  t.throws(() => parseComponentTemplate('spec:\n  inputs: {a: {description: d}}\n---\nj: {script: [x]}', 'templates/x.yml'), {
    code: 'SPEC_INVALID',
    message: /a\.type/,
  });
  t.throws(() => parseComponentTemplate('spec:\n  include: x.yml\n---\nj: {script: [x]}', 'templates/x.yml'), { code: 'SPEC_INVALID' });
  t.throws(() => parseComponentTemplate('j: {script: [x]}', 'templates/x.yml'), { code: 'SPEC_INVALID' });
  t.throws(() => parseComponentTemplate('spec: {}\n---\nj: 1', 'templates/x.yaml'), { code: 'TEMPLATE_PATH_INVALID' });
  t.throws(() => parseComponentTemplate('spec: {}\n---\nj: 1', 'templates/a.b.yml'), { code: 'TEMPLATE_PATH_INVALID' });
  const onboard = byName('onboard');
  t.throws(() => resolveInputs(onboard.spec.inputs, { dry_run: 'yes' }, 'w'), {
    code: 'INPUT_INVALID',
    message: /dry_run: expected a boolean/,
  });
  t.throws(() => resolveInputs(onboard.spec.inputs, { token_variable: 'glpat-abc' }, 'w'), {
    code: 'INPUT_INVALID',
    message: /token_variable: does not match/,
  });
  t.throws(() => resolveInputs(onboard.spec.inputs, { nope: 1 }, 'w'), { code: 'INPUT_INVALID', message: /nope: unknown input/ });
  t.throws(() => interpolate('$[[ inputs.missing ]]', { inputs: {}, where: 'w' }), { code: 'INTERPOLATION_INVALID' });
  t.throws(() => interpolate('$[[ inputs.a | expand_vars ]]', { inputs: { a: 1 }, where: 'w' }), { code: 'INTERPOLATION_INVALID' });
  t.equal(interpolate('$[[ inputs.n ]]', { inputs: { n: 3 }, where: 'w' }), 3, 'a whole-value interpolation keeps its type');
  t.equal(interpolate('x-$[[ inputs.n ]]', { inputs: { n: 3 }, where: 'w' }), 'x-3', 'inside a string it is text');
});

/** The job's variables as the runner exports them: values expanded against the job's own environment. */
function jobVariables(job: Record<string, unknown>, base: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { ...base };
  for (const [k, v] of Object.entries((job.variables ?? {}) as Record<string, string>)) {
    out[k] = String(v).replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_m, n: string) => base[n] ?? '');
  }
  return out;
}

function scriptOf(job: Record<string, unknown>): string {
  return (job.script as string[]).join('\n');
}

t.test('onboard: the job script hands the CLI the inputs and the token from the named variable', async (t) => {
  // The onboarding CLI is another module with its own tests; here a stand-in on PATH
  // records the argv the component passes across the process boundary and writes
  // the report files the CLI contract names (FILE and FILE.md).
  const bin = mkdtempSync(join(tmpdir(), 'onboard-bin-'));
  writeFileSync(
    join(bin, 'gitlab-otel'),
    `#!/bin/sh\nprintf '%s\\n' "$@" > "$ARGV_OUT"\nprintf '%s' "$GITLAB_TOKEN" > "$TOKEN_OUT"\nwhile [ $# -gt 0 ]; do if [ "$1" = --report ]; then echo '{}' > "$2"; echo '# summary line' > "$2.md"; fi; shift; done\nexit 1\n`,
  );
  chmodSync(join(bin, 'gitlab-otel'), 0o755);
  const work = mkdtempSync(join(tmpdir(), 'onboard-job-'));
  const { config } = render(byName('onboard'), SAMPLES.onboard!);

  const job = resolveExtends(config, 'otel-onboarding');
  const env = jobVariables(job, {
    CI_PROJECT_ID: '99',
    OTEL_ONBOARDING_TOKEN: 'glpat-secret',
    ARGV_OUT: join(work, 'argv'),
    TOKEN_OUT: join(work, 'token'),
  });
  const run = await runProcess('sh', ['-e', '-c', scriptOf(job)], jobEnv({ ...env, PATH: `${bin}:${process.env.PATH}` }), 30_000, work);
  t.equal(run.code, 1, "the CLI's exit code is the job's");
  t.match(run.stdout, /# summary line/, 'the Markdown summary is printed in the job log');
  t.ok(existsSync(join(work, 'gitlab-otel-onboard', 'report.json')), 'report written where artifacts:paths looks');
  t.same(readFileSync(join(work, 'argv'), 'utf8').trim().split('\n'), [
    'onboard',
    '--report',
    'gitlab-otel-onboard/report.json',
    '--concurrency',
    '2',
    '--group',
    'platform',
    '--project',
    '42',
    '--project',
    'other/project',
    '--label',
    'observability',
    '--label',
    'otel',
    '--dry-run',
  ]);
  t.equal(readFileSync(join(work, 'token'), 'utf8'), 'glpat-secret', 'GITLAB_TOKEN read from the variable named by token_variable');
  t.same(job.artifacts, { name: 'gitlab-otel-onboard-report', when: 'always', expire_in: '30 days', paths: ['gitlab-otel-onboard/'] });

  const manual = resolveExtends(config, 'otel-onboarding-this-project');
  t.same(manual.rules, [{ when: 'manual', allow_failure: true }]);
  const menv = jobVariables(manual, {
    CI_PROJECT_ID: '99',
    OTEL_ONBOARDING_TOKEN: 'glpat-secret',
    ARGV_OUT: join(work, 'argv2'),
    TOKEN_OUT: join(work, 'token2'),
  });
  await runProcess('sh', ['-e', '-c', scriptOf(manual)], jobEnv({ ...menv, PATH: `${bin}:${process.env.PATH}` }), 30_000, work);
  t.match(readFileSync(join(work, 'argv2'), 'utf8'), /--project\n99\n/, 'the manual job onboards the current project');

  const defaults = resolveExtends(render(byName('onboard'), { include_subgroups: true, target: 'group:g' }).config, 'gitlab-otel-onboard');
  // GitLab adds a job only when one of its rules matches; the default's one rule matches scheduled pipelines only, so an
  // include with default inputs adds nothing to push or merge-request pipelines (where, without a token, the job's exit 2
  // would fail them: it is not allow_failure).
  t.same(defaults.rules, [{ if: '$CI_PIPELINE_SOURCE == "schedule"' }], 'default rules: scheduled pipelines only');
  t.notOk('allow_failure' in defaults, 'so the default need not hide failures with allow_failure');
  const denv = jobVariables(defaults, { GITLAB_TOKEN: 't', ARGV_OUT: join(work, 'argv3'), TOKEN_OUT: join(work, 'token3') });
  await runProcess('sh', ['-e', '-c', scriptOf(defaults)], jobEnv({ ...denv, PATH: `${bin}:${process.env.PATH}` }), 30_000, work);
  t.match(readFileSync(join(work, 'argv3'), 'utf8'), /--group\ng\n--include-subgroups\n/);
  t.notMatch(readFileSync(join(work, 'argv3'), 'utf8'), /--dry-run/);

  const noToken = await runProcess(
    'sh',
    ['-e', '-c', scriptOf(job)],
    jobEnv({ ...jobVariables(job, {}), PATH: `${bin}:${process.env.PATH}` }),
    30_000,
    work,
  );
  t.equal(noToken.code, 2, 'a missing token stops the job before the CLI runs');
  t.match(noToken.stderr, /OTEL_ONBOARDING_TOKEN \(input token_variable\) is empty or not set/);
});

t.test('job-telemetry: hidden opt-in job, and the .post jobs export the root span the proxy parents jobs to', async (t) => {
  const { config } = render(byName('job-telemetry'), SAMPLES['job-telemetry']!);
  t.same(config['.trace-root-job'], {
    variables: {
      GITLAB_OTEL_TELEMETRY: 'true',
      GITLAB_OTEL_ENDPOINT: 'https://otel.example.com:4317',
      GITLAB_OTEL_ID_TOKEN_VARIABLE: 'OTEL_TOKEN',
    },
    id_tokens: { OTEL_TOKEN: { aud: 'https://otel.example.com' } },
  });
  const ok = resolveExtends(config, 'trace-root-pipeline');
  const failed = resolveExtends(config, 'trace-root-pipeline-failed');
  t.match(ok, {
    stage: 'cleanup',
    when: 'on_success',
    allow_failure: true,
    rules: [{ if: '$CI_COMMIT_BRANCH' }],
    id_tokens: { OTEL_TOKEN: {} },
  });
  t.match(failed, { stage: 'cleanup', when: 'on_failure', allow_failure: true, variables: { GITLAB_OTEL_RESULT: 'failure' } });
  t.notOk(ok.needs, '.post jobs wait for the whole pipeline');

  const receiver = await new OtlpReceiver().start();
  t.teardown(() => receiver.stop());
  const ci = {
    CI_SERVER_URL: 'https://gitlab.example.com',
    CI_PIPELINE_ID: '31337',
    CI_PIPELINE_CREATED_AT: '2026-01-02T03:04:05Z',
    CI_PIPELINE_URL: 'https://gitlab.example.com/g/p/-/pipelines/31337',
    CI_PROJECT_PATH: 'g/p',
    CI_PROJECT_ID: '7',
    CI_COMMIT_BRANCH: 'main',
    CI_COMMIT_SHA: 'abc123',
    OTEL_TOKEN: '',
  };
  const bin = cliOnPath();
  const env = jobVariables(failed, ci);
  // GitLab's own endpoint input points elsewhere; the standard variable wins.
  const run = await runProcess(
    'sh',
    ['-e', '-c', scriptOf(failed)],
    jobEnv({ ...env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, PATH: `${bin}:${process.env.PATH}` }),
    60_000,
  );
  t.equal(run.code, 0, run.stderr);
  await receiver.waitForSpans(1);
  const root = receiver.spans[0]!;
  t.equal(root.traceId, gitlabTraceId(ci.CI_PIPELINE_ID), 'trace id derived like the proxy (GitLab scheme by default)');
  t.equal(root.spanId, pipelineRootSpanId(ci.CI_SERVER_URL, ci.CI_PIPELINE_ID), 'span id derived like the proxy');
  t.equal(root.parentSpanId, '');
  t.equal(root.name, 'RUN g/p');
  t.equal(root.kind, 2, 'SERVER');
  t.equal(root.status.code, 2);
  t.match(root.attributes, {
    'cicd.pipeline.result': 'failure',
    'cicd.pipeline.run.id': '31337',
    'ci.pipeline.id': 31337,
    'vcs.ref.head.name': 'main',
  });
  t.equal(root.startTimeUnixNano, BigInt(Date.parse(ci.CI_PIPELINE_CREATED_AT)) * 1_000_000n);

  const span = config['.trace-root-span'] as Record<string, unknown>;
  t.match(scriptOf(span), /gitlab-otel\}? span --name/, 'the hidden span template wraps a command with gitlab-otel span');
});
