// stage-enrichment: facts about a build stage read from the runner's own lines (docs/job-log.md).
import t from 'tap';
import { ENRICHED_STAGES, readsStream, StageEnrichment } from '../../../src/runner-proxy/job-log/stage-enrichment.js';

function read(stage: string, lines: string[], max = 4096) {
  const e = new StageEnrichment(stage);
  for (const l of lines) e.line(l);
  return e.attributes(max);
}

t.test('readsStream', async (t) => {
  t.ok(readsStream('get_sources', undefined));
  t.ok(readsStream('get_sources', 0));
  t.ok(readsStream('get_sources', 1), 'helper-container stages read the work-level stream');
  t.notOk(readsStream('prepare_executor', 1), "prepare_executor is the runner's own stream only");
  t.notOk(readsStream('get_sources', 2));
  t.ok(ENRICHED_STAGES.has('restore_cache'));
  t.notOk(ENRICHED_STAGES.has('step_script'), 'user script stages are never decoded');
});

t.test('prepare_executor: image, pull policy and digest of that image only', async (t) => {
  const img = 'registry.example.com/app:1.2';
  const digest = `registry.example.com/app@sha256:${'a'.repeat(64)}`;
  t.same(
    read('prepare_executor', [
      `\x1b[0KUsing docker executor with image ${img} ...\x1b[0;m`,
      `Using effective pull policy of [always] for container ${img}`,
      `Using effective pull policy of [never] for container other:1`,
      `Using docker image sha256:${'b'.repeat(64)} for ${img} with digest ${digest} ...`,
    ]),
    { 'ci.image.name': img, 'ci.image.pull_policy': 'always', 'ci.image.digest': digest },
  );
  t.same(
    read('prepare_executor', [`Using effective pull policy of [always] for container ${img}`]),
    {},
    'a policy before the image names nothing',
  );
  t.same(read('prepare_executor', ['Using docker executor with image x ...'], 3), { 'ci.image.name': 'x' });
  t.same(read('prepare_executor', ['Using docker executor with image abcdef ...'], 3), { 'ci.image.name': 'abc' }, 'values are truncated');
});

t.test('get_sources: depth and operation', async (t) => {
  t.same(read('get_sources', ['Fetching changes with git depth set to 20...', 'Created fresh repository.']), {
    'ci.git.depth': 20,
    'ci.git.operation': 'clone',
  });
  t.same(read('get_sources', ['Fetching changes...', 'Reinitialized existing Git repository in /builds/x/.git/']), {
    'ci.git.depth': 0,
    'ci.git.operation': 'fetch',
  });
  t.same(read('get_sources', ['Skipping Git repository setup']), { 'ci.git.operation': 'none' });
  t.same(read('get_sources', ['Fetching changes with git depth set to 1234567890...']), {}, 'absurd depths are not read');
});

t.test('caches: the key that hit, hits and misses', async (t) => {
  t.same(read('restore_cache', ['Checking cache for main-1...', 'Successfully extracted cache']), {
    'ci.cache.key': 'main-1',
    'ci.cache.hit': true,
  });
  t.same(
    read('restore_cache', [
      'Checking cache for main-1...',
      'WARNING: Failed to extract cache',
      'Checking cache for fallback...',
      'Successfully extracted cache',
    ]),
    { 'ci.cache.key': 'fallback', 'ci.cache.hit': true },
    'a fallback key that hit is the one reported',
  );
  t.same(
    read('restore_cache', ['Checking cache for a...', 'Successfully extracted cache', 'Checking cache for b...']),
    { 'ci.cache.key': 'a', 'ci.cache.hit': true },
    'a key checked after a hit does not replace the key that hit',
  );
  t.same(read('restore_cache', ['Checking cache for k...', 'Failed to extract cache']), { 'ci.cache.key': 'k', 'ci.cache.hit': false });
  t.same(read('archive_cache', ['Creating cache first...', 'Creating cache second...']), { 'ci.cache.key': 'first' });
  t.same(read('archive_cache', ['Checking cache for k...']), {}, 'lines of another stage are not read');
});

t.test('artifacts: types uploaded, never the URL or token', async (t) => {
  const out = read('upload_artifacts_on_success', [
    'Uploading artifacts as "archive" to coordinator... 201 Created  id=5 responseStatus=201 Created token=glcbt-secret',
    'Uploading artifacts as "junit" to coordinator... ok  id=5 token=glcbt-secret',
    'Uploading artifacts as "dotenv" to coordinator... 500 Internal Server Error',
  ]);
  t.same(out, { 'ci.artifact.type': ['archive', 'junit'], 'ci.artifact.count': 2 });
  t.notOk(JSON.stringify(out).includes('glcbt'), 'the uploader token is not copied');
  const many = read(
    'upload_artifacts_on_failure',
    Array.from({ length: 40 }, () => 'Uploading artifacts as "archive" to coordinator... ok'),
  );
  t.equal(many['ci.artifact.count'], 32, 'at most 32 uploads are kept');
  t.same(read('step_script', ['Uploading artifacts as "archive" to coordinator... ok']), {}, 'other stages: nothing');
});
