/**
 * Reading snapshot files: one by id (through the metadata cache), all of them, and the lookup
 * of a snapshot reference (`latest`, or an id prefix). Saving one is {@link Repository.saveSnapshot}.
 */
import type { RepositoryCache } from '../cache/repository-cache.js';
import type { MasterKeys } from '../crypto/keys.js';
import type { Storage } from '../storage/types.js';
import { mapLimit } from './blob-reader.js';
import { parseSnapshot } from './decode.js';
import { SnapshotNotFoundError } from './errors.js';
import { openMetadataFile } from './metadata-file.js';
import { listFiles } from './open.js';
import type { Snapshot } from './types.js';
import { loadWholeFile } from './whole-file.js';
import { compareText, compareTimes } from '../time-order.js';

export interface SnapshotFilter {
  host?: string;
  /** Match snapshots whose `paths` are exactly these (order-insensitive). */
  paths?: string[];
  /** Match snapshots that have every one of these tags (for `--host`/`--tag`/`--path` selection see `selectSnapshot`). */
  tags?: string[];
}

/**
 * Load one snapshot by its full id, from the cache when it has it (and into the cache when not).
 * `size`: the file's size from a listing (else the storage is asked, before the file is read).
 */
export async function loadSnapshotFile(storage: Storage, keys: MasterKeys, cache: RepositoryCache | undefined, id: string, size?: number): Promise<Snapshot> {
  const file = `snapshots/${id}`;
  const cached = await cache?.getMetadata('snapshot', id, size);
  let bytes: Buffer;
  try {
    bytes = cached ?? (await loadWholeFile(storage, { type: 'snapshot', name: id }, size));
  } catch (err) {
    if (storage.isNotFound(err)) throw new SnapshotNotFoundError(id);
    throw err;
  }
  const body = await openMetadataFile(keys, bytes, file, id);
  const snapshot = parseSnapshot(body, file);
  if (cache && !cached) await cache.putMetadata('snapshot', id, bytes);
  return snapshot;
}

/**
 * Every snapshot, oldest first, each read with `load` (given its size from the listing). A damaged
 * snapshot file rejects with {@link IntegrityError}, unless `onError` is given: then it is
 * reported there and skipped.
 */
export async function listSnapshotFiles(
  storage: Storage,
  cache: RepositoryCache | undefined,
  load: (id: string, size: number) => Promise<Snapshot>,
  opts: { onError?: (file: string, err: Error) => void },
): Promise<Array<{ id: string; snapshot: Snapshot }>> {
  const files = await listFiles(storage, 'snapshot');
  await cache?.clean('snapshot', new Set(files.map((f) => f.name)));
  const loaded = await mapLimit(files, 8, async ({ name: id, size }) => {
    try {
      return { id, snapshot: await load(id, size) };
    } catch (err) {
      if (!opts.onError || err instanceof SnapshotNotFoundError) {
        if (err instanceof SnapshotNotFoundError) return undefined; // removed meanwhile
        throw err;
      }
      opts.onError(`snapshots/${id}`, err as Error);
      return undefined;
    }
  });
  const out = loaded.filter((x): x is { id: string; snapshot: Snapshot } => x !== undefined);
  return out.sort((a, b) => compareTimes(a.snapshot.time, b.snapshot.time) || compareText(a.id, b.id));
}

/**
 * `latest`: the newest snapshot of `list()` (oldest first) matching `filter`, or
 * {@link SnapshotNotFoundError} saying what was looked for.
 */
export async function latestSnapshot(
  ref: string,
  filter: SnapshotFilter,
  list: () => Promise<Array<{ id: string; snapshot: Snapshot }>>,
): Promise<{ id: string; snapshot: Snapshot }> {
  const want = filter.paths ? [...filter.paths].sort() : undefined;
  const all = (await list()).filter(
    ({ snapshot: s }) =>
      (filter.host === undefined || s.hostname === filter.host) &&
      (filter.tags === undefined || filter.tags.every((t) => s.tags.includes(t))) &&
      (want === undefined || (s.paths.length === want.length && [...s.paths].sort().every((p, i) => p === want[i]))),
  );
  const last = all[all.length - 1];
  if (!last) {
    const parts = [filter.host !== undefined ? `host ${filter.host}` : '', filter.tags?.length ? `tags ${filter.tags.join(',')}` : '', want ? `paths ${want.join(', ')}` : ''].filter(Boolean);
    throw new SnapshotNotFoundError(ref, [], parts.length ? `(for ${parts.join(' and ')})` : '(the repository has no snapshots)');
  }
  return last;
}

/**
 * The one snapshot whose id starts with the hex prefix `ref`, read with `load` (given its size
 * from the listing); else {@link SnapshotNotFoundError} (listing candidates).
 */
export async function snapshotByPrefix(storage: Storage, ref: string, load: (id: string, size: number) => Promise<Snapshot>): Promise<{ id: string; snapshot: Snapshot }> {
  const prefix = ref.toLowerCase();
  if (!/^[0-9a-f]+$/.test(prefix)) throw new SnapshotNotFoundError(ref, [], '(expected a hex id prefix or "latest")');
  const matches = (await listFiles(storage, 'snapshot')).filter((f) => f.name.startsWith(prefix));
  if (matches.length === 0) throw new SnapshotNotFoundError(ref);
  if (matches.length > 1) throw new SnapshotNotFoundError(ref, matches.map((f) => f.name));
  const { name, size } = matches[0]!;
  return { id: name, snapshot: await load(name, size) };
}
