// Facts about a build stage read from the runner's own lines in that stage:
// the image in prepare_executor, git depth/operation in get_sources, cache key
// and hit in restore_cache / archive_cache*, artifact uploads in
// upload_artifacts_*. Line formats are gitlab-runner's (shells/abstract.go
// Noticef/Warningf texts, executors/docker pull messages, the helper's
// artifacts-uploader result line).
//
// Only specific groups are copied out: never a whole line, never a URL, never
// the `token=` the uploader prints. Lines are only ever fed from runner stages
// (never step_* / after_script, never inside a user section); the caller
// enforces that.
import type { AttributeValue, Attributes } from '@opentelemetry/api';
import { CI } from '../../telemetry/attributes.js';

/** Stages whose lines are worth decoding. */
export const ENRICHED_STAGES: ReadonlySet<string> = new Set([
  'prepare_executor',
  'get_sources',
  'restore_cache',
  'archive_cache',
  'archive_cache_on_failure',
  'upload_artifacts_on_success',
  'upload_artifacts_on_failure',
]);

/**
 * Whether a line on `stream` may be read in `stage`. The docker executor runs
 * the git/cache/artifact scripts in the helper container on the work-level
 * stream (01), so those stages accept 01; prepare_executor is the runner's
 * own (00) only.
 */
export function readsStream(stage: string, stream: number | undefined): boolean {
  if (stream === undefined || stream === 0) return true;
  return stream === 1 && stage !== 'prepare_executor';
}

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

const EXECUTOR_IMAGE = /^Using \S+ executor with image (\S+) \.\.\.$/;
const PULL_POLICY = /^Using effective pull policy of \[([^\]]*)\] for container (\S+)$/;
const IMAGE_DIGEST = /^Using docker image sha256:[0-9a-f]+ for (\S+) with digest (\S+@sha256:[0-9a-f]{64}) \.\.\.$/;
const GIT_DEPTH = /^Fetching changes with git depth set to (\d{1,9})\.\.\.$/;
const GIT_FULL = /^Fetching changes\.\.\.$/;
const GIT_FRESH = /^Created fresh repository\.$/;
const GIT_REINIT = /^Reinitialized existing Git repository in /;
const GIT_NONE = /^Skipping Git repository setup$/;
const CACHE_CHECK = /^Checking cache for (.+)\.\.\.$/;
const CACHE_HIT = /^Successfully extracted cache$/;
const CACHE_MISS = /^(?:WARNING: )?Failed to extract cache$/;
const CACHE_CREATE = /^Creating cache (.+)\.\.\.$/;
const ARTIFACT_UPLOAD = /^(?:WARNING: |ERROR: )?Uploading artifacts as "([A-Za-z0-9_.-]{1,64})" to coordinator\.\.\. (?:201 Created|ok)\b/;

export class StageEnrichment {
  private image?: string;
  private pullPolicy?: string;
  private digest?: string;
  private depth?: number;
  private operation?: 'clone' | 'fetch' | 'none';
  private cacheKey?: string;
  private cacheHit?: boolean;
  private readonly artifactTypes: string[] = [];

  constructor(readonly stage: string) {}

  line(raw: string): void {
    const text = raw.replace(ANSI, '').trim();
    if (text.length === 0) return;
    let m: RegExpExecArray | null;
    switch (this.stage) {
      case 'prepare_executor':
        if ((m = EXECUTOR_IMAGE.exec(text))) this.image = m[1];
        else if ((m = PULL_POLICY.exec(text)) && m[2] === this.image) this.pullPolicy = m[1];
        else if ((m = IMAGE_DIGEST.exec(text)) && m[1] === this.image) this.digest = m[2];
        return;
      case 'get_sources':
        if ((m = GIT_DEPTH.exec(text))) this.depth = Number(m[1]);
        else if (GIT_FULL.test(text)) this.depth = 0;
        else if (GIT_FRESH.test(text)) this.operation = 'clone';
        else if (GIT_REINIT.test(text)) this.operation ??= 'fetch';
        else if (GIT_NONE.test(text)) this.operation = 'none';
        return;
      case 'restore_cache':
        if ((m = CACHE_CHECK.exec(text))) {
          // A fallback key is checked after a miss; the key that hit is the one to report.
          if (this.cacheHit !== true) this.cacheKey = m[1];
        } else if (CACHE_HIT.test(text)) this.cacheHit = true;
        else if (CACHE_MISS.test(text)) this.cacheHit ??= false;
        return;
      case 'archive_cache':
      case 'archive_cache_on_failure':
        if ((m = CACHE_CREATE.exec(text))) this.cacheKey ??= m[1];
        return;
      case 'upload_artifacts_on_success':
      case 'upload_artifacts_on_failure':
        if ((m = ARTIFACT_UPLOAD.exec(text)) && this.artifactTypes.length < 32) this.artifactTypes.push(m[1]!);
        return;
    }
  }

  attributes(maxLength: number): Attributes {
    const out: Record<string, AttributeValue> = {};
    const str = (v: string) => (v.length > maxLength ? v.slice(0, maxLength) : v);
    if (this.image !== undefined) out[CI.imageName] = str(this.image);
    if (this.pullPolicy !== undefined) out[CI.imagePullPolicy] = str(this.pullPolicy);
    if (this.digest !== undefined) out[CI.imageDigest] = str(this.digest);
    if (this.depth !== undefined) out[CI.gitDepth] = this.depth;
    if (this.operation !== undefined) out[CI.gitOperation] = this.operation;
    if (this.cacheKey !== undefined) out[CI.cacheKey] = str(this.cacheKey);
    if (this.cacheHit !== undefined) out[CI.cacheHit] = this.cacheHit;
    if (this.artifactTypes.length > 0) {
      out[CI.artifactType] = this.artifactTypes.map(str);
      out[CI.artifactCount] = this.artifactTypes.length;
    }
    return out;
  }
}
