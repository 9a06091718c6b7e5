import { prune, type Logger, type Repository, type RetentionPolicyConfig } from '@kiwi-backup/core';
import { formatBytes } from '../output.js';

/**
 * The seam between a job and the repository's maintenance: after each backup the job's `forget` policy is
 * applied to the job's snapshots (same host and paths), and a `prune` task removes data no snapshot uses.
 * The daemon only talks to this small interface; {@link retentionEngine} provides the implementation.
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

export type RetentionStep = 'forget' | 'prune';

export interface RetentionEngine {
  /** Why a step is not part of this build (undefined: it is). Jobs record such a step as skipped. */
  unavailable(step: RetentionStep): string | undefined;
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

const FORGET_UNAVAILABLE = 'forget is not part of this version of Kiwi yet: the job keeps every snapshot';

/**
 * The retention engine of this build: prune is core's `prune` (exclusive lock, crash-safe order); the
 * forget policy engine (`kiwi forget`) is being built on its own branch, so until it lands a job's forget
 * step is recorded as skipped (the backups themselves are not affected).
 */
export function retentionEngine(): RetentionEngine {
  return {
    unavailable: (step) => (step === 'forget' ? FORGET_UNAVAILABLE : undefined),
    forget: () => Promise.reject(new RetentionUnavailableError(FORGET_UNAVAILABLE)),
    async prune({ repository, signal }) {
      signal.throwIfAborted();
      const r = await prune(repository, {});
      return {
        message:
          `deleted ${r.packs.deleted} pack${r.packs.deleted === 1 ? '' : 's'}, repacked ${r.packs.repacked}, freed ${formatBytes(Math.max(0, r.bytes.freed))}; ` +
          `${formatBytes(r.bytes.unusedAfter)} unused data left`,
      };
    },
  };
}
