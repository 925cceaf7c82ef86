// Span attributes from GitLab's predefined CI variables: ids as numbers, empty
// values left out, the head ref typed, and nothing secret ever copied
// (docs/gitlab-api.md#ci-variables). Pure; called directly.
import t from 'tap';
import {
  isoToNanos,
  isPipelineResult,
  jobContextAttributes,
  pipelineAttributes,
  pipelineName,
  PIPELINE_RESULTS,
} from '../../src/in-job/ci-attributes.js';

const env = {
  CI_JOB_ID: '4242',
  CI_JOB_NAME: 'build',
  CI_JOB_STAGE: 'test',
  CI_PIPELINE_ID: '777',
  CI_PIPELINE_URL: 'https://gitlab.example.com/g/p/-/pipelines/777',
  CI_PIPELINE_SOURCE: 'push',
  CI_PROJECT_ID: '12',
  CI_PROJECT_PATH: 'g/p',
  CI_PROJECT_NAME: 'p',
  CI_COMMIT_SHA: 'a'.repeat(40),
  CI_COMMIT_BRANCH: 'main',
  CI_COMMIT_REF_NAME: 'main',
  // Must never reach an attribute: they carry credentials.
  CI_REPOSITORY_URL: 'https://gitlab-ci-token:glcbt-SECRET@gitlab.example.com/g/p.git',
  CI_JOB_TOKEN: 'glcbt-SECRET',
};

t.test('job context: ci.* ids as numbers, names as strings', async (t) => {
  t.same(jobContextAttributes(env), {
    'ci.job.id': 4242,
    'ci.job.name': 'build',
    'ci.job.stage': 'test',
    'ci.pipeline.id': 777,
    'ci.project.id': 12,
  });
  t.same(jobContextAttributes({ CI_JOB_ID: '', CI_JOB_NAME: 'x' }), { 'ci.job.name': 'x' }, 'empty values are left out');
  t.same(jobContextAttributes({ CI_JOB_ID: 'abc' }), { 'ci.job.id': 'abc' }, 'a non-numeric id stays a string');
});

t.test('pipeline root attributes: semconv cicd.* / vcs.* plus ci.*', async (t) => {
  const attrs = pipelineAttributes(env, 'failure');
  t.same(attrs, {
    'cicd.pipeline.name': 'g/p',
    'cicd.pipeline.action.name': 'RUN',
    'cicd.pipeline.result': 'failure',
    'cicd.pipeline.run.id': '777',
    'cicd.pipeline.run.url.full': env.CI_PIPELINE_URL,
    'ci.pipeline.id': 777,
    'ci.pipeline.source': 'push',
    'ci.project.id': 12,
    'ci.project.path': 'g/p',
    'vcs.provider.name': 'gitlab',
    'vcs.repository.name': 'p',
    'vcs.ref.head.revision': env.CI_COMMIT_SHA,
    'vcs.ref.head.name': 'main',
    'vcs.ref.head.type': 'branch',
  });
  const text = JSON.stringify(attrs);
  t.notMatch(text, /SECRET|gitlab-ci-token/, 'no credential-bearing variable is copied');
  t.match(pipelineAttributes({ ...env, CI_COMMIT_BRANCH: '', CI_COMMIT_TAG: 'v1.2.0' }, 'success'), {
    'vcs.ref.head.name': 'v1.2.0',
    'vcs.ref.head.type': 'tag',
  });
  const bare = pipelineAttributes({}, 'skip');
  t.notOk('vcs.ref.head.type' in bare, 'no ref, no ref type');
  t.equal(bare['cicd.pipeline.name'], 'pipeline');
});

t.test('pipeline name: workflow:name, else the project path, else a constant', async (t) => {
  t.equal(pipelineName({ CI_PIPELINE_NAME: ' Nightly ', CI_PROJECT_PATH: 'g/p' }), 'Nightly');
  t.equal(pipelineName({ CI_PIPELINE_NAME: '  ', CI_PROJECT_PATH: 'g/p' }), 'g/p', 'a blank name falls through');
  t.equal(pipelineName({}), 'pipeline');
});

t.test('pipeline results are the semconv values only', async (t) => {
  for (const r of PIPELINE_RESULTS) t.ok(isPipelineResult(r), r);
  t.notOk(isPipelineResult('failed'), "GitLab's own word is not a semconv value");
  t.notOk(isPipelineResult(''));
});

t.test('CI_PIPELINE_CREATED_AT to Unix nanoseconds', async (t) => {
  t.equal(isoToNanos('2026-01-01T00:00:01Z'), 1_767_225_601_000_000_000n);
  t.equal(isoToNanos('2026-01-01T02:00:01+02:00'), 1_767_225_601_000_000_000n, 'offsets honoured');
  t.equal(isoToNanos('not a date'), undefined);
  t.equal(isoToNanos(undefined), undefined);
  t.equal(isoToNanos(''), undefined);
});
