// The demo's words (src/demo/narration.ts): arrival lines, the burst summary
// and the closing summary, with colour only when asked. Pure.
import t from 'tap';
import { CI } from '../../src/telemetry/attributes.js';
import { SpanProgress } from '../../src/demo/span-progress.js';
import { arrivalLines, DETAILED_ARRIVAL_MAX, painter, summaryLines } from '../../src/demo/narration.js';
import { span } from '../support/demo-spans.js';

const ANSI = /\x1b\[/;

t.test('narration: one line per span for small arrivals, one summary line for a burst; colour only when asked', async (t) => {
  const p = new SpanProgress();
  p.jobStarted(101, 'j1');
  const names = new Map([[101, 'test:unit']]);
  const one = p.receive([span('st', 'j1', 'step_script', { [CI.stageName]: 'step_script' }, true)]);
  const stepScript = [span('st', 'j1', 'step_script', { [CI.stageName]: 'step_script' }, true)];
  const lines = arrivalLines(stepScript, one, names, painter(false));
  t.same(lines, ['job 101 (test:unit) stage step_script failed ✗ (250ms)']);
  t.match(arrivalLines(stepScript, one, names, painter(true))[0], ANSI);

  // A burst is counted by what arrived, including sections still waiting for their stage.
  const many = [
    ...Array.from({ length: DETAILED_ARRIVAL_MAX }, (_, i) => span(`x${i}`, 'j1', `stage${i}`, { [CI.stageName]: `stage${i}` })),
    span('sec', 'not-yet', 'build', { [CI.sectionName]: 'build' }),
  ];
  const burst = arrivalLines(many, p.receive(many), names, painter(false));
  t.same(burst, [`collector received ${many.length} spans: 0 job_execution, ${DETAILED_ARRIVAL_MAX} stage, 1 section`]);

  const summary = summaryLines(
    {
      pipelineId: 7,
      jobs: [{ state: 'success' }, { state: 'failed' }],
      spans: 20,
      traces: 1,
      failedSpans: 2,
      dropped: 0,
      runnerCalls: 30,
      runnerErrors: 0,
      wallMs: 1200,
      collectorDown: { downMs: 1000, jobsFinishedWhileDown: 2, spansAfterRecovery: 20 },
      problems: ['something (DEMO_SPANS_DROPPED)'],
    },
    painter(false),
  ).join('\n');
  t.match(summary, /pipeline 7: 2 jobs \(1 succeeded, 1 failed\) · 20 spans in 1 trace \(2 ERROR\) · 0 dropped/);
  t.match(summary, /30 calls to GitLab, every one answered without error/);
  t.match(summary, /away for the first 1\.0s: 2 jobs finished meanwhile/);
  t.match(summary, /problem: something \(DEMO_SPANS_DROPPED\)/);
  t.match(summary, /gitlab-otel runner-proxy --help/);
  t.notMatch(summary, ANSI);
});
