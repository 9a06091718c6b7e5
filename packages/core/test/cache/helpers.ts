/** What the metadata cache tests share: a storage that counts its loads, and a snapshot's listing. */
import { listTree, type Handle, type LoadOptions, type Storage } from '../../src/index.js';
import type { Repository } from '../../src/repository/repository.js';

/** Storage that counts loads, and their bytes, by type (a tree-pack load is a `data` load). */
export function counting(inner: Storage): Storage & { loads: Record<string, number>; bytes: Record<string, number>; reset(): void } {
  const loads: Record<string, number> = {};
  const bytes: Record<string, number> = {};
  return {
    loads,
    bytes,
    reset: () => {
      for (const k of Object.keys(loads)) delete loads[k];
      for (const k of Object.keys(bytes)) delete bytes[k];
    },
    location: inner.location,
    create: () => inner.create(),
    save: (h, d) => inner.save(h, d),
    load: async (h: Handle, o?: LoadOptions) => {
      loads[h.type] = (loads[h.type] ?? 0) + 1;
      const out = await inner.load(h, o);
      bytes[h.type] = (bytes[h.type] ?? 0) + out.byteLength;
      return out;
    },
    stat: (h) => inner.stat(h),
    list: (t) => inner.list(t),
    remove: (h) => inner.remove(h),
    isNotFound: (e) => inner.isNotFound(e),
    close: () => inner.close(),
  };
}

/** The paths of the latest snapshot, as `kiwi ls latest` lists them. */
export async function listing(repo: Repository): Promise<string[]> {
  const { snapshot } = await repo.findSnapshot('latest');
  const out: string[] = [];
  for await (const { path } of listTree(repo, snapshot)) out.push(path);
  return out;
}
