import t from 'tap';
import { SpanStatusCode } from '@opentelemetry/api';
import { buildJobLog, JOB_LOG_SCENARIOS } from '../../../src/lab/job-log-builder.js';
import { LogSpans } from '../../../src/runner-proxy/job-log/log-spans.js';
import type { SpanRecord } from '../../../src/telemetry/spans.js';
import { CTX, describe, expected, run } from '../../support/job-log-harness.js';

const START = new Date('2026-03-14T15:09:26.535897Z');

for (const timestamps of [true, false]) {
  for (const scenario of JOB_LOG_SCENARIOS) {
    t.test(`${scenario}, FF_TIMESTAMPS ${timestamps}: stages and sections as the runner wrote them`, async (t) => {
      const log = buildJobLog(scenario, { start: START, timestamps });
      const { spans, job } = run(log, [[0, log.bytes]]);
      const got = describe(spans);
      t.same(
        got.map(({ name, parent, start, end, status }) => ({ name, parent, start, end, status })),
        expected(log),
      );
      for (const s of spans) {
        t.equal(s.traceId, CTX.traceId);
        t.equal(s.kind, 0, 'INTERNAL');
      }
      // Attributes of stages: name, status, attempt, truncated, enrichment.
      for (const e of log.sections.filter((s) => s.kind === 'stage')) {
        const span = spans.find(
          (s) => s.name === e.name && s.attributes['ci.stage.attempt'] === e.attempt && s.attributes['ci.stage.name'] === e.name,
        );
        if (!t.ok(span, `${e.name} #${e.attempt} exported`)) continue;
        t.match(span!.attributes, {
          'ci.stage.name': e.name,
          'ci.stage.status': e.status,
          'ci.stage.attempt': e.attempt,
          'ci.stage.truncated': e.truncated,
        });
        if (e.attributes) t.match(span!.attributes, e.attributes, `${e.name} enrichment`);
      }
      for (const s of spans.filter((s) => 'ci.section.name' in s.attributes)) {
        t.notOk('ci.stage.status' in s.attributes, 'user sections carry no stage status');
      }
      // Nothing secret or verbatim from the log reaches a span.
      const text = JSON.stringify(spans, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
      for (const secret of log.secrets) t.notOk(text.includes(secret), `no ${secret} in spans`);
      t.notOk(text.includes('token='), 'no uploader token field');
      t.notOk(text.includes('gitlab.example.com'), 'no repository URL');
      if (timestamps) {
        t.equal(job.firstTimestamp, log.firstTimestamp);
        t.equal(job.lastTimestamp, log.lastTimestamp);
      } else {
        t.equal(job.firstTimestamp, undefined);
      }
      t.equal(job.outputLimitHit, log.truncated);
    });
  }
}

t.test('a failing script: ERROR on step_script with the failure reason, settled before the job ends', async (t) => {
  const log = buildJobLog('script-failure', { start: START, timestamps: true });
  const spans: SpanRecord[] = [];
  const job = new LogSpans(CTX, (s) => spans.push(s));
  const b = log.bytes;
  const failurePath = b.indexOf('section_start:', b.indexOf('archive_cache_on_failure') - 40);
  job.accept(0, b.subarray(0, failurePath + 60));
  const step = spans.find((s) => s.name === 'step_script');
  t.ok(step, 'step_script is exported once archive_cache_on_failure starts, before the final update');
  t.equal(step?.status.code, 2);
  t.equal(step?.attributes['ci.stage.status'], 'failed');
  job.accept(failurePath + 60, b.subarray(failurePath + 60));
  job.finish({ state: 'failed', failureReason: 'script_failure' }, log.endNs);
  t.same(
    spans.filter((s) => s.status.code === SpanStatusCode.ERROR).map((s) => s.name),
    ['step_script'],
    'only the stage the job failed in',
  );
});

t.test('a failing script with no cache or artifacts: settled by the final update', async (t) => {
  const log = buildJobLog('script-failure', { start: START, timestamps: false });
  const b = log.bytes;
  // Cut the log right after after_script (as if no cache/artifact stages were configured).
  const cut = b.indexOf('section_start:', b.indexOf('section_end:', b.indexOf('Running after script')));
  const spans: SpanRecord[] = [];
  const job = new LogSpans(CTX, (s) => spans.push(s));
  job.accept(0, b.subarray(0, cut));
  t.notOk(
    spans.find((s) => s.name === 'step_script'),
    'held: its status is not known yet',
  );
  t.ok(
    spans.find((s) => s.name === 'after_script'),
    'after_script is exported at its end',
  );
  job.finish({ state: 'failed', failureReason: 'script_failure' }, log.endNs);
  const step = spans.find((s) => s.name === 'step_script')!;
  t.equal(step.status.code, 2);
  t.equal(step.status.message, 'script_failure');
});

t.test('stages are exported when they end, not at the job end', async (t) => {
  const log = buildJobLog('success', { start: START, timestamps: true });
  const b = log.bytes;
  const spans: SpanRecord[] = [];
  const job = new LogSpans(CTX, (s) => spans.push(s));
  const afterPrepare = b.indexOf('section_start:', b.indexOf('section_end:') + 1);
  job.accept(0, b.subarray(0, afterPrepare));
  t.same(
    spans.map((s) => s.name),
    [],
    'prepare_executor can fail the job: held until the next stage',
  );
  job.accept(afterPrepare, b.subarray(afterPrepare, afterPrepare + 200));
  t.same(
    spans.map((s) => s.name),
    ['prepare_executor'],
  );
});

t.test('output limit: the open stage closes at the final update, truncated; no later stages invented', async (t) => {
  const log = buildJobLog('output-limit', { start: START, timestamps: true });
  t.ok(log.truncated);
  const { spans, job } = run(log, [[0, log.bytes]]);
  t.ok(job.outputLimitHit);
  const step = spans.find((s) => s.name === 'step_script')!;
  t.equal(step.attributes['ci.stage.truncated'], true);
  t.equal(step.endTimeUnixNano, log.endNs);
  t.notOk(spans.find((s) => s.name === 'cleanup_file_variables'));
});

t.test('a canceled job marks the stage it stopped in', async (t) => {
  const log = buildJobLog('success', { start: START, timestamps: true });
  const b = log.bytes;
  const cut = b.indexOf('Résumé');
  const spans: SpanRecord[] = [];
  const job = new LogSpans(CTX, (s) => spans.push(s));
  job.accept(0, b.subarray(0, cut));
  job.finish({ state: 'canceled' }, log.endNs);
  const step = spans.find((s) => s.name === 'step_script')!;
  t.equal(step.attributes['ci.stage.status'], 'canceled');
  t.equal(step.attributes['ci.stage.truncated'], true);
  t.equal(step.status.code, 0);
});

t.test('guardrails: span cap counts dropped sections, attribute values are cut', async (t) => {
  const lines = ['section_start:1704067201:step_script\r\x1b[0K\n'];
  for (let i = 0; i < 30; i++) lines.push(`section_start:1704067202:s_${i}\r\x1b[0K\nsection_end:1704067203:s_${i}\r\x1b[0K\n`);
  lines.push(`section_start:1704067204:${'n'.repeat(200)}\r\x1b[0K\nsection_end:1704067205:${'n'.repeat(200)}\r\x1b[0K\n`);
  lines.push('section_end:1704067209:step_script\r\x1b[0K\n');
  const spans: SpanRecord[] = [];
  const job = new LogSpans({ ...CTX, maxSpans: 10, maxAttributeLength: 32 }, (s) => spans.push(s));
  job.accept(0, Buffer.from(lines.join('')));
  job.finish({ state: 'success' }, 1_704_067_300_000_000_000n);
  t.equal(spans.filter((s) => 'ci.section.name' in s.attributes).length, 10);
  t.equal(job.droppedSections, 21);
  t.ok(
    spans.find((s) => s.name === 'step_script'),
    'the stage is still exported past the cap',
  );
  for (const s of spans) t.ok(s.name.length <= 32);
});

t.test('bad nesting and stray markers never crash and leave nothing open', async (t) => {
  const log = [
    'section_end:1704067200:nothing_open\r\x1b[0K\n',
    'section_start:1704067201:step_script\r\x1b[0K\n',
    'section_start:1704067202:outer\r\x1b[0K\n',
    'section_start:1704067203:inner\r\x1b[0K\n',
    'section_end:1704067204:outer\r\x1b[0K\n', // inner never ended
    'section_start:1704067205:dangling\r\x1b[0K\n',
    'section_end:1704067206:step_script\r\x1b[0K\n', // dangling never ended
    'section_start:1704067207:after_script\r\x1b[0K\n', // and after_script never ends
  ].join('');
  const spans: SpanRecord[] = [];
  const job = new LogSpans(CTX, (s) => spans.push(s));
  job.accept(0, Buffer.from(log));
  job.finish({ state: 'success' }, 1_704_067_300_000_000_000n);
  const d = describe(spans);
  t.same(
    d.map((s) => [s.name, s.parent]),
    [
      ['step_script#1', 'job'],
      ['outer#1', 'step_script#1'],
      ['inner#1', 'outer#1'],
      ['dangling#1', 'step_script#1'],
      ['after_script#1', 'job'],
    ],
  );
  t.equal(spans.find((s) => s.name === 'inner')!.attributes['ci.section.unclosed'], true);
  t.equal(spans.find((s) => s.name === 'inner')!.endTimeUnixNano, 1_704_067_204_000_000_000n);
  t.equal(spans.find((s) => s.name === 'dangling')!.endTimeUnixNano, 1_704_067_206_000_000_000n);
  t.equal(spans.find((s) => s.name === 'after_script')!.attributes['ci.stage.truncated'], true);
});

t.test('FF_CONCRETE: step-runner stages are stages under job_execution, inside the runner `concrete` stage', async (t) => {
  for (const timestamps of [true, false]) {
    const log = buildJobLog('concrete-script-failure', { start: START, timestamps });
    const { spans } = run(log, [[0, log.bytes]]);
    const d = describe(spans);
    const stages = d.filter((s) => 'ci.stage.name' in s.attributes);
    t.same(
      stages.map((s) => [s.name, s.parent]),
      [
        ['prepare_executor#1', 'job'],
        ['concrete#1', 'job'],
        ['get_sources#1', 'job'],
        ['restore_cache#1', 'job'],
        ['download_artifacts#1', 'job'],
        ['step_script#1', 'job'],
        ['after_script#1', 'job'],
        ['archive_cache_on_failure#1', 'job'],
        ['upload_artifacts_on_failure#1', 'job'],
      ],
      `stages, in order (timestamps ${timestamps})`,
    );
    const concrete = d.find((s) => s.name === 'concrete#1')!;
    for (const s of stages.slice(2)) {
      t.ok(s.start >= concrete.start && s.end <= concrete.end, `${s.name} lies within concrete`);
      t.ok(s.end > s.start, `${s.name} has a duration although its end marker repeats its start's seconds`);
    }
    t.same(
      d.filter((s) => s.status === 2).map((s) => s.name),
      ['concrete#1', 'step_script#1'],
      'the script failed, and with it the stage the whole job ran in',
    );
    t.same(
      d.filter((s) => 'ci.section.name' in s.attributes).map((s) => [s.name, s.parent]),
      [
        ['build#1', 'step_script#1'],
        ['get_sources#2', 'step_script#1'],
      ],
      "a built-in name printed by the script stays the script's section",
    );
  }
});

t.test('FF_CONCRETE: snapshot and restore inside the concrete stage give the same spans', async (t) => {
  const log = buildJobLog('concrete', { start: START, timestamps: true });
  const b = log.bytes;
  const whole = describe(run(log, [[0, b]]).spans);
  for (const cut of [
    b.indexOf('section_start:', b.indexOf(':concrete')) + 20,
    b.indexOf('step_script') + 3,
    b.indexOf('$ echo done') + 4,
  ]) {
    // (not inside an enriched stage: what enrichment gathered before a restart is lost)
    const spans: SpanRecord[] = [];
    const first = new LogSpans(CTX, (s) => spans.push(s));
    first.accept(0, b.subarray(0, cut));
    const snap = JSON.parse(JSON.stringify(first.snapshot())) as ReturnType<LogSpans['snapshot']>;
    const second = LogSpans.restore(CTX, snap, (s) => spans.push(s));
    second.accept(cut, b.subarray(cut));
    second.finish({ state: 'success' }, log.endNs);
    t.same(describe(spans), whole, `restored at ${cut}`);
  }
});
