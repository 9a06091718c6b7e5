import { resolve } from 'node:path';
import {
  DEFAULT_GROUP_BY,
  describeGroupKey,
  describePolicy,
  parseGroupBy,
  parsePolicy,
  planRetention,
  prune,
  removeSnapshotFiles,
  type Logger,
  type Repository,
  type RetentionPolicyConfig,
  type RetentionPolicyInput,
} from '@kiwi-backup/core';
import { formatBytes } from '../output.js';

/** A set of paths as one comparable string (absolute, no duplicates, sorted), as snapshots record them. */
export function pathsKey(paths: readonly string[]): string {
  return [...new Set(paths.map((p) => resolve(p)))].sort().join('\0');
}

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

/**
 * The retention engine: forget is `kiwi forget`'s policy engine (restic's rules, an exclusive lock, only
 * snapshot files removed) applied to the job's own snapshots; prune is core's `prune` (exclusive lock,
 * crash-safe order).
 */
export function retentionEngine(): RetentionEngine {
  return {
    unavailable: () => undefined,
    async forget({ repository, policy: input, host, paths, signal, log }) {
      const { groupBy: g, ...rules } = input;
      const policy = parsePolicy(rules as RetentionPolicyInput, (r) => `forget.${r.key}`);
      const groupBy = g === undefined ? [...DEFAULT_GROUP_BY] : parseGroupBy(Array.isArray(g) ? g.join(',') : g, 'forget.groupBy');
      const lock = await repository.lock('exclusive');
      try {
        // The job's snapshots only: this host and exactly these paths (not another job's that shares a path).
        const want = pathsKey(paths);
        const mine = (await repository.listSnapshots()).filter(({ snapshot: s }) => s.hostname === host && pathsKey(s.paths) === want);
        const plan = planRetention(mine, { policy, groupBy });
        if (plan.emptiedGroups.length) {
          throw new Error(`refusing to forget every snapshot of ${plan.emptiedGroups.map((k) => describeGroupKey(k)).join('; ')}: no rule of ${describePolicy(policy)} keeps any; nothing was removed`);
        }
        signal.throwIfAborted();
        const result = await removeSnapshotFiles(repository.storage, plan.remove.map((i) => i.id));
        if (result.failed.length) {
          throw new Error(`${result.failed.length} snapshot file(s) could not be removed, e.g. snapshots/${result.failed[0]!.id}: ${result.failed[0]!.error.message}`);
        }
        const removed = [...result.removed, ...result.missing];
        log.info(`forget (${describePolicy(policy)}): kept ${plan.keep.length}, removed ${removed.length}`);
        return { kept: plan.keep.map((i) => i.id), removed };
      } finally {
        await lock.release();
      }
    },
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
