// The GitLab runner API simulator in its own process for the proxy benchmark,
// so answering GitLab's side does not share an event loop with the runner
// simulators that measure the calls. It keeps a queue of realistic GitLab 19
// job payloads topped up (every job request gets one at once) and forgets jobs
// once they finished, so a long run holds no logs.
// argv: JSON {pad, otelEndpoints, noTelemetryEvery, projects} (the last two for
// bench/metrics.ts: every Nth job without telemetry, project paths over N values). Sends {url} when listening; answers
// {artifact: id} with that job's first uploaded artifact ({size, sha256}).
import { GitLabRunnerApiSimulator } from '../src/lab/gitlab-runner-api.js';
import { makeJobPayload } from '../src/lab/job-payload.js';
import { newTraceId } from '../src/telemetry/spans.js';

export const RUNNER_TOKEN = 'glrt-bench';

const options = JSON.parse(process.argv[2] ?? '{}') as {
  pad?: number;
  otelEndpoints?: string[];
  noTelemetryEvery?: number;
  projects?: number;
};
const gitlab = await new GitLabRunnerApiSimulator({ runnerToken: RUNNER_TOKEN, record: false, longPollMs: 1000 }).start();
let nextId = 1_000_000;
const QUEUED = 128;
let pending = 0;

function topUp(): void {
  for (const [id, job] of gitlab.jobs) {
    if (job.state === 'success' || job.state === 'failed' || job.state === 'canceled') {
      // Keep artifact digests a little longer: the bench asks for them after the upload.
      if (job.artifactsUploaded.length === 0) gitlab.jobs.delete(id);
    }
  }
  pending = [...gitlab.jobs.values()].filter((j) => j.state === 'pending').length;
  for (; pending < QUEUED; pending++) {
    const id = nextId++;
    gitlab.enqueue(
      makeJobPayload({
        id,
        // GitLab 19 for a top-level pipeline: features.tracing with a trace id, no span_parent_id,
        // otel_endpoints as given (docs/runner-protocol.md#job-telemetry; bench/proxy.ts passes none).
        contract:
          options.noTelemetryEvery && id % options.noTelemetryEvery === 0 ? { kind: 'none' } : { kind: 'tracing', traceId: newTraceId() },
        ...(options.projects ? { projectPath: `group/project-${id % options.projects}` } : {}),
        otelEndpoints: options.otelEndpoints ?? [],
        padVariables: options.pad ?? 0,
      }),
    );
  }
}
topUp();
setInterval(topUp, 20);

process.on('message', (msg: { artifact?: number }) => {
  if (msg.artifact !== undefined) {
    const job = gitlab.jobs.get(msg.artifact);
    const got = job?.artifactsUploaded[0];
    process.send!({ artifact: got ? { size: got.size, sha256: got.sha256 } : null });
    gitlab.jobs.delete(msg.artifact);
  }
});
process.send!({ url: gitlab.url });
