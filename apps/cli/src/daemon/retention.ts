import type { Logger, Repository, RetentionPolicyConfig } from '@kiwi-backup/core';

/**
 * The seam between a job and the repository's maintenance: after each backup the job's `forget` policy is
 * applied to the job's snapshots (same host and paths), and a `prune` task removes unreferenced data. The
 * daemon only talks to this small interface; {@link retentionEngine} provides the implementation.
 */
export interface RetentionRequest {
  repository: Repository;
  policy: RetentionPolicyConfig;
  /** The job's snapshots: this host and these (absolute) paths. */
  host: string;
  paths: readonly string[];
  signal: AbortSignal;
  log: Logger;
}

export interface ForgetOutcome {
  /** Snapshot ids kept and removed. */
  kept: string[];
  removed: string[];
}

export interface PruneOutcome {
  message: string;
}

export interface RetentionEngine {
  /** False while this version of Kiwi has no forget/prune: jobs record the step as skipped. */
  readonly available: boolean;
  /** Why not, when not available. */
  readonly unavailableReason?: string;
  forget(request: RetentionRequest): Promise<ForgetOutcome>;
  prune(request: Omit<RetentionRequest, 'policy' | 'host' | 'paths'>): Promise<PruneOutcome>;
}

/** Thrown when a step is asked of an engine that cannot do it. */
export class RetentionUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetentionUnavailableError';
  }
}

const UNAVAILABLE = 'forget and prune are not part of this version of Kiwi yet: the job keeps every snapshot';

/**
 * The retention engine of this build. `kiwi forget`/`kiwi prune` (core's retention module) are being
 * built on their own branch; until they land this engine reports itself unavailable and the job's
 * retention step is recorded as skipped (the backups themselves are not affected).
 */
export function retentionEngine(): RetentionEngine {
  return {
    available: false,
    unavailableReason: UNAVAILABLE,
    forget: () => Promise.reject(new RetentionUnavailableError(UNAVAILABLE)),
    prune: () => Promise.reject(new RetentionUnavailableError(UNAVAILABLE)),
  };
}
