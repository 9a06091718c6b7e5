/**
 * The conformance kit tested against deliberately broken adapters: each
 * breakage must make the check that covers it fail (and the kit must pass on
 * the correct memory adapter, see conformance.test.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { FileInfo, FileType, Handle, LoadOptions, Storage } from '@kiwi-backup/core';
import { conformanceCheck, defaultConformanceOptions, runConformanceCheck } from '@kiwi-backup/storage-testkit';
import { createMemoryStorage } from '../src/index.js';

const opts = { ...defaultConformanceOptions, bigFileSize: 2 * 1024 * 1024, manyFiles: 300 };

/** A memory storage with some methods replaced. */
function broken(overrides: (inner: Storage) => Partial<Storage>): { open(): Promise<Storage> } {
  return {
    async open() {
      const inner = createMemoryStorage();
      const o = overrides(inner);
      return {
        location: inner.location,
        create: o.create ?? (() => inner.create()),
        save: o.save ?? ((h: Handle, d: Uint8Array) => inner.save(h, d)),
        load: o.load ?? ((h: Handle, l?: LoadOptions) => inner.load(h, l)),
        stat: o.stat ?? ((h: Handle) => inner.stat(h)),
        list: o.list ?? ((t: FileType) => inner.list(t)),
        remove: o.remove ?? ((h: Handle) => inner.remove(h)),
        isNotFound: o.isNotFound ?? ((e: unknown) => inner.isNotFound(e)),
        close: o.close ?? (() => inner.close()),
      };
    },
  };
}

const run = (setup: { open(): Promise<Storage> }, check: string) =>
  runConformanceCheck(setup, conformanceCheck(check), opts);

describe('the conformance kit catches broken adapters', () => {
  it('passes every check on the memory adapter with small sizes', async () => {
    for (const name of ['create()', 'save/load', 'a big file', 'ranged', 'list yields each', 'no partial']) {
      await run({ open: async () => createMemoryStorage() }, name);
    }
  });

  it('a list that yields a file twice fails the listing check', async () => {
    const dup = broken((inner) => ({
      list: (type) =>
        (async function* () {
          let first: FileInfo | undefined;
          for await (const f of inner.list(type)) {
            first ??= f;
            yield f;
          }
          if (first) yield first;
        })(),
    }));
    await expect(run(dup, 'list yields each')).rejects.toThrow(/more than once/);
    // The breakage is specific: round trips still pass.
    await run(dup, 'save/load');
  });

  it('a list that leaks other types fails the per-type listing check', async () => {
    const leaky = broken((inner) => ({
      list: (type) =>
        (async function* () {
          yield* inner.list(type);
          if (type === 'index') yield* inner.list('key');
        })(),
    }));
    await expect(run(leaky, 'list yields only')).rejects.toThrow(/list\(index\)/);
  });

  it('a list that drops files after the first page fails the pagination check', async () => {
    const paged = broken((inner) => ({
      list: (type) =>
        (async function* () {
          let n = 0;
          for await (const f of inner.list(type)) if (n++ < 100) yield f;
        })(),
    }));
    await expect(run(paged, 'list yields each')).rejects.toThrow(/did not yield/);
  });

  it('a load that returns short data fails the round-trip and range checks', async () => {
    const short = broken((inner) => ({
      load: async (h, l) => {
        const buf = await inner.load(h, l);
        return buf.length > 1 ? buf.subarray(0, buf.length - 1) : buf;
      },
    }));
    await expect(run(short, 'save/load')).rejects.toThrow(/got 4096 bytes, expected 4097/);
    await expect(run(short, 'ranged')).rejects.toThrow(/bytes/);
    await expect(run(short, 'a big file')).rejects.toThrow(/bytes/);
  });

  it('a load that corrupts one byte is caught with its offset', async () => {
    const flip = broken((inner) => ({
      load: async (h, l) => {
        const buf = await inner.load(h, l);
        if (buf.length > 1000) buf[777] = buf[777]! ^ 1;
        return buf;
      },
    }));
    await expect(run(flip, 'a big file')).rejects.toThrow(/differ first at offset 777/);
  });

  it('a range past the end that returns a short read fails the range check', async () => {
    const lenient = broken((inner) => ({
      load: async (h, l) => {
        const all = await inner.load(h);
        const start = l?.offset ?? 0;
        return all.subarray(start, l?.length === undefined ? undefined : start + l.length);
      },
    }));
    await expect(run(lenient, 'ranged')).rejects.toThrow(/expected a rejection/);
  });

  it('an isNotFound that does not recognise not-found fails the not-found check', async () => {
    const blind = broken(() => ({ isNotFound: () => false }));
    await expect(run(blind, 'load/stat/remove of a missing')).rejects.toThrow(/isNotFound\(err\) is false/);
    await expect(run(blind, 'remove deletes')).rejects.toThrow(/isNotFound/);
  });

  it('an isNotFound that says yes to everything fails the other-errors check', async () => {
    const yes = broken(() => ({ isNotFound: () => true }));
    await expect(run(yes, 'isNotFound is false')).rejects.toThrow(/is not false/);
  });

  it('a remove of a missing file that succeeds fails the not-found check', async () => {
    const quiet = broken((inner) => ({
      remove: async (h) => {
        await inner.remove(h).catch(() => undefined);
      },
    }));
    await expect(run(quiet, 'load/stat/remove of a missing')).rejects.toThrow(/remove .*resolved/);
  });

  it('a non-atomic save fails the no-partial-file check', async () => {
    const torn = broken((inner) => ({
      save: async (h, d) => {
        await inner.save(h, d.subarray(0, Math.floor(d.byteLength / 2)));
        await sleep(30);
        await inner.save(h, d);
      },
    }));
    await expect(run(torn, 'no partial')).rejects.toThrow(/during save/);
    await expect(run(torn, 'overwriting a file')).rejects.toThrow(/neither the old .* nor the new/);
  });

  it('a save that keeps the caller buffer fails the copies check', async () => {
    const files = new Map<string, Uint8Array>();
    const sharing = broken((inner) => ({
      save: async (h, d) => {
        files.set(JSON.stringify(h), d);
        await inner.save(h, d);
      },
      load: async (h, l) => {
        const kept = files.get(JSON.stringify(h));
        return kept && !l ? Buffer.from(kept.buffer, kept.byteOffset, kept.byteLength) : inner.load(h, l);
      },
    }));
    await expect(run(sharing, 'saved and loaded buffers')).rejects.toThrow(/overwrote its buffer/);
  });

  it('a save that ignores a view offset fails the copies check', async () => {
    const viewBug = broken((inner) => ({
      save: (h, d) => inner.save(h, new Uint8Array(d.buffer, 0, d.byteLength)),
    }));
    await expect(run(viewBug, 'saved and loaded buffers')).rejects.toThrow(/bytes differ/);
  });

  it('a stat with a wrong size fails the stat check', async () => {
    const off = broken((inner) => ({
      stat: async (h) => {
        const i = await inner.stat(h);
        return { ...i, size: i.size + 1 };
      },
    }));
    await expect(run(off, 'stat reports')).rejects.toThrow(/size/);
  });

  it('a save that accepts unsafe names fails the names check', async () => {
    const lax = broken((inner) => ({
      save: async () => undefined,
      load: async () => Buffer.alloc(0),
      create: () => inner.create(),
    }));
    await expect(run(lax, 'unsafe handle names')).rejects.toThrow(/expected a rejection/);
  });

  it('a failed check still closes the storage and runs cleanup', async () => {
    let closed = 0;
    let cleaned = 0;
    const setup = {
      open: async () => {
        const s = (await broken(() => ({ isNotFound: () => false })).open()) as Storage;
        return { ...s, close: async () => void closed++ };
      },
      cleanup: async () => void cleaned++,
    };
    await expect(runConformanceCheck(setup, conformanceCheck('load/stat/remove of a missing'), opts)).rejects.toThrow();
    expect(closed).toBe(1);
    expect(cleaned).toBe(1);
  });
});
