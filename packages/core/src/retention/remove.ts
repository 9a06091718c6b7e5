/**
 * Removing snapshot files (`snapshots/<id>`): what `forget` does once it decided. Only the
 * snapshot files go; the data they referenced stays until a prune.
 */
import type { Storage } from '../storage/types.js';

export interface RemoveSnapshotsResult {
  removed: string[];
  /** Snapshots already gone (removed by another process meanwhile): not an error. */
  missing: string[];
  failed: Array<{ id: string; error: Error }>;
}

/**
 * Remove `snapshots/<id>` for each id, a few at a time. A failure does not stop the others;
 * each is reported in the result (and to `onRemoved`/`onFailed` as it happens).
 */
export async function removeSnapshotFiles(
  storage: Storage,
  ids: readonly string[],
  opts: { concurrency?: number; onRemoved?: (id: string) => void; onFailed?: (id: string, error: Error) => void } = {},
): Promise<RemoveSnapshotsResult> {
  const result: RemoveSnapshotsResult = { removed: [], missing: [], failed: [] };
  const queue = [...new Set(ids)];
  let next = 0;
  const worker = async () => {
    while (next < queue.length) {
      const id = queue[next++]!;
      try {
        await storage.remove({ type: 'snapshot', name: id });
        result.removed.push(id);
        opts.onRemoved?.(id);
      } catch (err) {
        if (storage.isNotFound(err)) {
          result.missing.push(id);
          continue;
        }
        const error = err instanceof Error ? err : new Error(String(err));
        result.failed.push({ id, error });
        opts.onFailed?.(id, error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, opts.concurrency ?? 8), queue.length) }, worker));
  return result;
}
