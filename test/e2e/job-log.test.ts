// Job logs as the runner really writes them, through the real proxy to a real
// OTLP receiver: a FF_CONCRETE job (stages written by step-runner inside the
// runner's `concrete` stage) and a job with `\r` progress output, a marker cut
// after its `\r` and a line past the stamper's 8 KiB buffer, uploaded in small
// PATCHes so entries and markers are cut between them (docs/job-log.md).
import t from 'tap';
import { memoryLogger } from '../support/memory-logger.js';
import { startLab, runLabJob } from '../../src/lab/lab.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

for (const scenario of ['concrete-script-failure', 'progress'] as const) {
  t.test(`${scenario}: every stage and section, parented and timed from the log`, async (t) => {
    const log = memoryLogger();
    const lab = await startLab({ log });
    t.teardown(() => lab.stop());
    const job = await runLabJob(lab, lab.runner(), {
      payload: { id: 4101, contract: { kind: 'tracing', traceId: TRACE, spanParentId: PARENT } },
      scenario,
      patchSizes: Array.from({ length: 400 }, (_, i) => 97 + ((i * 131) % 1900)),
    });
    t.equal(job.result.finalStatus, 200);
    await lab.receiver!.waitForSpans(1 + job.log.sections.length, 10_000);
    const spans = lab.receiver!.spans;
    t.equal(spans.length, 1 + job.log.sections.length, 'one job span and one span per stage or section, no more');
    const jobSpan = spans.find((s) => s.name === 'job_execution')!;
    t.ok(jobSpan, 'job_execution exported');
    const byName = new Map<string, typeof spans>();
    for (const s of spans) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
    for (const e of job.log.sections) {
      const matching = (byName.get(e.name) ?? []).filter((s) =>
        e.kind === 'stage' ? s.attributes['ci.stage.attempt'] === e.attempt : 'ci.section.name' in s.attributes,
      );
      t.equal(matching.length, 1, `${e.kind} ${e.name} exported once`);
      const span = matching[0]!;
      const parent = e.kind === 'stage' ? jobSpan : spans.find((s) => s.name === e.parent && 'ci.stage.name' in s.attributes);
      t.equal(span.parentSpanId, parent?.spanId, `${e.name}: parent ${e.kind === 'stage' ? 'job_execution' : e.parent}`);
      t.equal(span.startTimeUnixNano, e.startNs, `${e.name} start`);
      t.equal(span.endTimeUnixNano, e.endNs, `${e.name} end`);
      if (e.kind === 'stage') t.equal(span.status.code, e.status === 'failed' ? 2 : 0, `${e.name} status`);
    }
    if (scenario === 'concrete-script-failure') {
      t.ok(byName.get('concrete'), 'the runner stage the whole job ran in is exported');
      t.match(
        byName.get('get_sources')![0]!.attributes,
        { 'ci.git.depth': 20, 'ci.git.operation': 'clone' },
        'enriched from step-runner notices',
      );
    }
    t.notOk(
      log.lines.some((l) => l.level === 'error'),
      'no errors logged',
    );
  });
}
