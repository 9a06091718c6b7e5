/**
 * The listing checks that put files in place past the adapter (`writeRaw`), run against a small
 * storage over a map of paths: one whose `list` takes every name it finds (as the local adapter
 * did) must fail them, one that lists only what `load` reads must pass, and without `writeRaw`
 * they pass without checking.
 */
import { describe, expect, it } from 'vitest';
import {
  FILE_TYPES,
  StorageError,
  assertValidHandle,
  handlePath,
  resolveLoadRange,
  typeDir,
  type FileInfo,
  type FileType,
  type Handle,
  type Storage,
} from '@kiwi-backup/core';
import { conformanceCheck, runConformanceCheck } from '../src/index.js';

/** A storage whose files are a map from `handlePath`-style paths to bytes, like a directory tree. */
function pathStorage(listing: 'naive' | 'strict'): Storage & { files: Map<string, Buffer> } {
  const files = new Map<string, Buffer>();
  const notFound = (path: string) => new StorageError(`${path}: no such file`, { kind: 'not-found', location: path });
  return {
    files,
    location: `paths:${listing}`,
    async create() {},
    async save(h: Handle, data: Uint8Array) {
      assertValidHandle(h);
      files.set(handlePath(h), Buffer.from(data));
    },
    async load(h: Handle, options) {
      assertValidHandle(h);
      const buf = files.get(handlePath(h));
      if (!buf) throw notFound(handlePath(h));
      const { offset, length } = resolveLoadRange(options, buf.byteLength, handlePath(h));
      return Buffer.from(buf.subarray(offset, offset + length));
    },
    async stat(h: Handle) {
      assertValidHandle(h);
      const buf = files.get(handlePath(h));
      if (!buf) throw notFound(handlePath(h));
      return { name: h.type === 'config' ? 'config' : h.name, size: buf.byteLength };
    },
    async *list(type: FileType): AsyncIterable<FileInfo> {
      if (!FILE_TYPES.includes(type)) throw new TypeError(`invalid file type ${type}`);
      if (type === 'config') {
        const buf = files.get('config');
        if (buf) yield { name: 'config', size: buf.byteLength };
        return;
      }
      const dir = `${typeDir(type)}/`;
      for (const [path, buf] of files) {
        if (!path.startsWith(dir)) continue;
        const parts = path.slice(dir.length).split('/');
        const name = parts[parts.length - 1]!;
        if (listing === 'naive') {
          // Every name of the type's tree, as the local adapter listed every data/ subdirectory.
          if (type !== 'data' || parts.length === 2) yield { name, size: buf.byteLength };
          continue;
        }
        // Only what load reads under that name: the path must be the handle's own path.
        let valid = true;
        try {
          assertValidHandle({ type, name });
        } catch {
          valid = false;
        }
        if (type === 'data' && !/^[0-9a-f]{64}$/.test(name)) valid = false;
        if (valid && handlePath({ type, name }) === path) yield { name, size: buf.byteLength };
      }
    },
    async remove(h: Handle) {
      if (!files.delete(handlePath(h))) throw notFound(handlePath(h));
    },
    isNotFound: (err: unknown) => err instanceof StorageError && err.kind === 'not-found',
    async close() {},
  };
}

function setup(listing: 'naive' | 'strict', raw = true) {
  return {
    open: async () => pathStorage(listing),
    ...(raw
      ? {
          writeRaw: async (storage: Storage, path: string, data: Uint8Array) => {
            (storage as ReturnType<typeof pathStorage>).files.set(path, Buffer.from(data));
          },
        }
      : {}),
  };
}

const misplaced = conformanceCheck('list skips a pack file outside its data/xx directory');
const invalid = conformanceCheck('list skips names that are not valid for their type');

describe('the listing checks that write files past the adapter', () => {
  it('fail a list that takes a pack from any data/ subdirectory, naming the wrong size', async () => {
    await expect(runConformanceCheck(setup('naive'), misplaced)).rejects.toThrow(/list gave size 2 for [0-9a-f]{64}, expected 5000|more than once/);
  });

  it('fail a list that yields names core refuses', async () => {
    await expect(runConformanceCheck(setup('naive'), invalid)).rejects.toThrow(/list yielded (a b|key@host|snap shot|lock,1|ab), which was never saved/);
  });

  it('fail, with a clear message, a list that throws on an odd entry', async () => {
    const throwing = {
      ...setup('strict'),
      open: async () => {
        const inner = pathStorage('strict');
        const strictList = inner.list;
        return Object.assign(inner, {
          list: (type: FileType) =>
            (async function* () {
              for (const path of inner.files.keys()) {
                if (path.startsWith(`${typeDir(type)}/`) && path.includes(' ')) throw new TypeError(`invalid file name ${JSON.stringify(path)}`);
              }
              yield* strictList(type);
            })(),
        });
      },
    };
    await expect(runConformanceCheck(throwing, invalid)).rejects.toThrow(/failed \(TypeError: invalid file name "snapshots\/snap shot"\); an entry that is not a file of that type must be skipped, not fail the listing/);
  });

  it('pass a list that yields only what load reads', async () => {
    await runConformanceCheck(setup('strict'), misplaced);
    await runConformanceCheck(setup('strict'), invalid);
  });

  it('pass without checking when the setup cannot write past the adapter', async () => {
    await runConformanceCheck(setup('naive', false), misplaced);
    await runConformanceCheck(setup('naive', false), invalid);
  });
});
