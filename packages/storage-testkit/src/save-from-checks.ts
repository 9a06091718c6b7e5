/**
 * Checks of the optional `saveFrom` (a save whose bytes are read from a {@link SaveSource} as they
 * are sent). Each passes trivially for a storage without it: Kiwi then reads the source into memory
 * and calls `save`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import type { Handle, SaveSource, Storage } from '@kiwi-backup/core';
import { deterministicBytes } from './bytes.js';
import { assertListedOnce, assertSameBytes, check, collect, expectNotFound, expectReject, handleFor, type ConformanceCheck } from './check-helpers.js';

/** A source over `data` that yields it in chunks of the given sizes (cycled), counting its opens. */
function chunkedSource(data: Uint8Array, sizes: number[], opts: { size?: number; pause?: () => Promise<void>; failAfter?: number } = {}): SaveSource & { opens: number } {
  const src = {
    size: opts.size ?? data.byteLength,
    opens: 0,
    async *open(): AsyncGenerator<Uint8Array> {
      src.opens++;
      let pos = 0;
      let i = 0;
      while (pos < data.byteLength) {
        if (opts.failAfter !== undefined && pos >= opts.failAfter) throw new Error('the source failed midway (injected)');
        const n = Math.min(sizes[i++ % sizes.length]!, data.byteLength - pos);
        // A fresh copy each time: the storage must not rely on a chunk staying the same after it moved on.
        yield Uint8Array.from(data.subarray(pos, pos + n));
        pos += n;
        if (opts.pause) await opts.pause();
      }
    },
  };
  return src;
}

/** A source backed by a file on this machine (with its `path`, as Kiwi's temporary packs are); `size` may lie. */
async function withFileSource<T>(data: Uint8Array, size: number, fn: (source: SaveSource) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'kiwi-testkit-'));
  try {
    const path = join(dir, 'source');
    await writeFile(path, data);
    return await fn({ size, path, open: () => chunkedSource(data, [65_536]).open() });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function nothingStored(storage: Storage, handle: Handle, what: string): Promise<void> {
  await expectNotFound(storage, `stat after ${what}`, () => storage.stat(handle));
  check((await collect(storage, handle.type)).length === 0, `list(${handle.type}) after ${what} yielded a file`);
}

const roundTrip: ConformanceCheck = {
  name: 'saveFrom (when the storage has it) stores exactly the bytes of a source read in uneven chunks',
  async run(storage, { bigFileSize }) {
    if (!storage.saveFrom) return;
    await storage.create();
    const files = [
      deterministicBytes(Math.max(1, Math.floor(bigFileSize / 4)), 'save-from-big'),
      deterministicBytes(4097, 'save-from-small'),
      new Uint8Array(0),
    ];
    const expected = new Map<string, number>();
    for (const data of files) {
      const handle = handleFor('data', data);
      const source = chunkedSource(data, [1, 65_535, 300_001, 4096]);
      await storage.saveFrom(handle, source);
      check(source.opens >= 1, `saveFrom of ${data.byteLength} bytes never opened the source`);
      assertSameBytes(await storage.load(handle), data, `load after saveFrom of ${data.byteLength} bytes`);
      check((await storage.stat(handle)).size === data.byteLength, `stat after saveFrom of ${data.byteLength} bytes gave another size`);
      expected.set(handle.name, data.byteLength);
    }
    // A source that is a local file (its `path` given): an adapter may copy the file instead of reading open().
    const fromFile = deterministicBytes(700_001, 'save-from-file');
    await withFileSource(fromFile, fromFile.byteLength, (source) => storage.saveFrom!(handleFor('data', fromFile), source));
    assertSameBytes(await storage.load(handleFor('data', fromFile)), fromFile, 'load after saveFrom of a file source');
    expected.set(handleFor('data', fromFile).name, fromFile.byteLength);
    assertListedOnce(await collect(storage, 'data'), expected, 'list(data) after saveFrom');
    // Saving again from the same source object reads it again from the start.
    const again = files[1]!;
    const source = chunkedSource(again, [1000]);
    await storage.saveFrom({ type: 'lock', name: 'a'.repeat(64) }, source);
    await storage.saveFrom({ type: 'lock', name: 'a'.repeat(64) }, source);
    assertSameBytes(await storage.load({ type: 'lock', name: 'a'.repeat(64) }), again, 'load after saving one source twice');
  },
};

const wrongSize: ConformanceCheck = {
  name: 'saveFrom refuses a source that yields more or fewer bytes than its size, and one that fails midway, storing nothing',
  async run(storage) {
    if (!storage.saveFrom) return;
    await storage.create();
    const data = deterministicBytes(300_000, 'save-from-wrong-size');
    const handle = handleFor('data', data);
    await expectReject('saveFrom of a source shorter than its size', () => storage.saveFrom!(handle, chunkedSource(data, [70_000], { size: data.byteLength + 1 })));
    await nothingStored(storage, handle, 'a short source');
    await expectReject('saveFrom of a source longer than its size', () => storage.saveFrom!(handle, chunkedSource(data, [70_000], { size: data.byteLength - 1 })));
    await nothingStored(storage, handle, 'a long source');
    await expectReject('saveFrom of a source that fails midway', () => storage.saveFrom!(handle, chunkedSource(data, [70_000], { failAfter: 140_000 })));
    await nothingStored(storage, handle, 'a failed source');
    // A file source whose file holds more or fewer bytes than its size says.
    await expectReject('saveFrom of a file source longer than its size', () => withFileSource(data, data.byteLength - 1, (source) => storage.saveFrom!(handle, source)));
    await nothingStored(storage, handle, 'a long file source');
    await expectReject('saveFrom of a file source shorter than its size', () => withFileSource(data, data.byteLength + 1, (source) => storage.saveFrom!(handle, source)));
    await nothingStored(storage, handle, 'a short file source');
  },
};

const atomic: ConformanceCheck = {
  name: 'saveFrom: no partial file is visible while the source is being read',
  async run(storage) {
    if (!storage.saveFrom) return;
    await storage.create();
    const data = deterministicBytes(1_000_000, 'save-from-atomic');
    const handle = handleFor('data', data);
    let chunks = 0;
    let seenMidway = 0;
    // Between chunks (the source is slow), the file must not be there yet.
    const source = chunkedSource(data, [100_000], {
      pause: async () => {
        chunks++;
        if (chunks === 3 || chunks === 6) {
          try {
            const info = await storage.stat(handle);
            check(false, `stat while saveFrom was reading its source saw the file (${info.size} bytes)`);
          } catch (err) {
            if ((err as Error).name === 'AssertionError') throw err;
            check(storage.isNotFound(err), `stat while saveFrom ran failed: ${(err as Error).message}`);
            seenMidway++;
          }
        }
        await tick();
      },
    });
    await storage.saveFrom(handle, source);
    check(seenMidway === 2, 'the source was not read while the save ran');
    assertSameBytes(await storage.load(handle), data, 'load after a slow saveFrom');
  },
};

/** The saveFrom checks, in the order they run. */
export const saveFromChecks: readonly ConformanceCheck[] = [roundTrip, wrongSize, atomic];
