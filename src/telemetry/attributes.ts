// Every attribute name the product emits, in one place. Two vocabularies on
// purpose: `ci.*` is what GitLab's own runner telemetry and its ClickHouse views
// use, `cicd.*` / `vcs.*` are the OpenTelemetry CI/CD semantic conventions.
// Emitting both lets either kind of dashboard work on the same trace.

export const CI = {
  jobId: 'ci.job.id',
  jobName: 'ci.job.name',
  jobStage: 'ci.job.stage',
  jobStatus: 'ci.job.status',
  jobFailureReason: 'ci.job.failure_reason',
  jobExitCode: 'ci.job.exit_code',
  jobTimeInQueue: 'ci.job.time_in_queue_seconds',
  pipelineId: 'ci.pipeline.id',
  pipelineSource: 'ci.pipeline.source',
  projectId: 'ci.project.id',
  projectPath: 'ci.project.path',
  runnerId: 'ci.runner.id',
  runnerExecutor: 'ci.runner.executor',
  runnerVersion: 'ci.runner.version',
  telemetryContract: 'ci.telemetry.contract',
  stageName: 'ci.stage.name',
  stageStatus: 'ci.stage.status',
  stageAttempt: 'ci.stage.attempt',
  stageTruncated: 'ci.stage.truncated',
  sectionName: 'ci.section.name',
  imageName: 'ci.image.name',
  imagePullPolicy: 'ci.image.pull_policy',
  imageDigest: 'ci.image.digest',
  gitOperation: 'ci.git.operation',
  artifactType: 'ci.artifact.type',
  sectionUnclosed: 'ci.section.unclosed',
  gitStrategy: 'ci.git.strategy',
  gitDepth: 'ci.git.depth',
  cacheKey: 'ci.cache.key',
  cacheHit: 'ci.cache.hit',
  cacheSizeBytes: 'ci.cache.size_bytes',
  artifactName: 'ci.artifact.name',
  artifactSizeBytes: 'ci.artifact.size_bytes',
  artifactCount: 'ci.artifact.count',
  logTruncated: 'ci.log.truncated',
  logBytes: 'ci.log.bytes',
  droppedSections: 'ci.sections.dropped',
} as const;

export const CICD = {
  pipelineName: 'cicd.pipeline.name',
  pipelineRunId: 'cicd.pipeline.run.id',
  pipelineRunUrl: 'cicd.pipeline.run.url.full',
  pipelineResult: 'cicd.pipeline.result',
  pipelineActionName: 'cicd.pipeline.action.name',
  taskName: 'cicd.pipeline.task.name',
  taskRunId: 'cicd.pipeline.task.run.id',
  taskRunUrl: 'cicd.pipeline.task.run.url.full',
  taskRunResult: 'cicd.pipeline.task.run.result',
  workerId: 'cicd.worker.id',
  workerName: 'cicd.worker.name',
  systemComponent: 'cicd.system.component',
} as const;

export const VCS = {
  headName: 'vcs.ref.head.name',
  headRevision: 'vcs.ref.head.revision',
  headType: 'vcs.ref.head.type',
  repositoryName: 'vcs.repository.name',
  providerName: 'vcs.provider.name',
} as const;

export const ERROR_TYPE = 'error.type';

/** Process semconv, for spans that wrap one command (`gitlab-otel span`). Never the arguments: they may hold secrets. */
export const PROCESS = {
  executableName: 'process.executable.name',
  exitCode: 'process.exit.code',
} as const;

export const RESOURCE = {
  serviceName: 'service.name',
  serviceVersion: 'service.version',
  runnerVersion: 'gitlab.runner.version',
  runnerExecutor: 'gitlab.runner.executor',
  runnerPlatform: 'gitlab.runner.platform',
  runnerArchitecture: 'gitlab.runner.architecture',
  proxyVersion: 'gitlab_otel.version',
} as const;

/** `cicd.pipeline.task.run.result` values (semconv RC). */
export type TaskRunResult = 'success' | 'failure' | 'error' | 'timeout' | 'cancellation' | 'skip';
