import { StorageError, handlePath, type FileInfo, type FileType, type Handle, type Storage } from '../../src/index.js';

type Op = 'create' | 'save' | 'load' | 'stat' | 'list' | 'remove' | 'close';

/**
 * A tiny Map-backed storage for core's own tests (core cannot depend on
 * @kiwi-backup/storage-memory, which depends on core). `failures[op]` is a queue
 * of errors thrown by the next calls of that operation; for `list`, an entry
 * `{ after: n, error }` fails after n items.
 */
export function fakeStorage() {
  const files = new Map<string, Buffer>();
  const calls: Record<Op, number> = { create: 0, save: 0, load: 0, stat: 0, list: 0, remove: 0, close: 0 };
  const failures: Partial<Record<Op, Array<unknown | { after: number; error: unknown }>>> = {};
  const nextFailure = (op: Op) => failures[op]?.shift();
  const notFound = (h: Handle) => new StorageError(`${handlePath(h)} does not exist`, { kind: 'not-found' });
  const gate = (op: Op) => {
    calls[op]++;
    const f = nextFailure(op);
    if (f !== undefined) throw f;
  };
  const storage: Storage = {
    location: 'fake:test',
    async create() {
      gate('create');
    },
    async save(h: Handle, d: Uint8Array) {
      gate('save');
      files.set(handlePath(h), Buffer.from(d));
    },
    async load(h: Handle) {
      gate('load');
      const f = files.get(handlePath(h));
      if (!f) throw notFound(h);
      return Buffer.from(f);
    },
    async stat(h: Handle) {
      gate('stat');
      const f = files.get(handlePath(h));
      if (!f) throw notFound(h);
      return { name: h.name, size: f.length };
    },
    list(type: FileType): AsyncIterable<FileInfo> {
      return (async function* () {
        calls.list++;
        const f = nextFailure('list') as { after?: number; error?: unknown } | undefined;
        const after = f && typeof f === 'object' && 'after' in f ? f.after! : f !== undefined ? 0 : Infinity;
        const error = f && typeof f === 'object' && 'after' in f ? f.error : f;
        let n = 0;
        for (const [path, buf] of [...files]) {
          if (!path.startsWith(`${type === 'data' ? 'data' : handlePath({ type, name: 'x' }).split('/')[0]}/`)) continue;
          if (n >= after) throw error;
          n++;
          yield { name: path.slice(path.lastIndexOf('/') + 1), size: buf.length };
        }
        if (n >= after && after !== Infinity) throw error;
      })();
    },
    async remove(h: Handle) {
      gate('remove');
      if (!files.delete(handlePath(h))) throw notFound(h);
    },
    isNotFound: (e: unknown) => e instanceof StorageError && e.kind === 'not-found',
    async close() {
      calls.close++;
    },
  };
  return { storage, files, calls, failures };
}

export const transient = (msg = 'connection reset') => Object.assign(new Error(msg), { code: 'ECONNRESET' });
