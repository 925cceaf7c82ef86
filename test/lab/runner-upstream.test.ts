// The runner simulator's job update against gitlab-runner's own test data: the
// log bytes of helpers/trace/buffer_test.go (TestTraceLimit, TestDelayedLimit),
// transcribed byte for byte (test/fixtures-upstream/gitlab-runner/SOURCE.md),
// must go out as the final PUT with the checksum upstream's tests expect for
// them, through the real proxy to GitLab (docs/verification.md#fixtures).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { startLab } from '../../src/lab/lab.js';
import { makeJobPayload } from '../../src/lab/job-payload.js';

const FIXTURES = new URL('../fixtures-upstream/gitlab-runner/', import.meta.url);

const CASES: [file: string, upstreamTest: string, checksum: string][] = [
  ['trace-buffer-limit.trace', 'TestTraceLimit', 'crc32:295921ca'],
  ['trace-buffer-delayed-limit.trace', 'TestDelayedLimit', 'crc32:559aa46f'],
];

t.test('final job update: checksum and bytesize as gitlab-runner computes them', async (t) => {
  const lab = await startLab({ receiver: false });
  t.teardown(() => lab.stop());
  const runner = lab.runner();
  let id = 7300;
  for (const [file, upstreamTest, checksum] of CASES) {
    const log = readFileSync(new URL(file, FIXTURES));
    lab.gitlab.enqueue(makeJobPayload({ id: ++id }));
    const job = (await runner.requestJob())!;
    const result = await runner.runJob(job, { log, state: 'success' });
    t.equal(result.finalStatus, 200);
    t.same(lab.gitlab.traceOf(id), log, `${upstreamTest}: GitLab holds the bytes`);
    const puts = lab.gitlab.exchanges.filter((e) => e.method === 'PUT' && e.path === `/api/v4/jobs/${id}`);
    const final = JSON.parse(puts[puts.length - 1]!.requestBody!.toString()) as {
      state: string;
      checksum: string;
      output: { checksum: string; bytesize: number };
    };
    t.equal(final.state, 'success');
    t.equal(final.checksum, checksum, `${upstreamTest}: the checksum upstream's test expects`);
    t.same(final.output, { checksum, bytesize: log.length }, `${upstreamTest}: output checksum and bytesize`);
  }
});
