/**
 * The conformance kit tested against deliberately broken adapters: each
 * breakage must make the check that covers it fail (and the kit must pass on
 * the correct memory adapter, see conformance.test.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { FileInfo, FileType, Handle, LoadOptions, SaveSource, Storage } from '@kiwi-backup/core';
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
        ...(o.preferredReadSize !== undefined ? { preferredReadSize: o.preferredReadSize } : {}),
        ...(o.removeMany ? { removeMany: o.removeMany } : {}),
        ...(o.saveFrom ? { saveFrom: o.saveFrom } : {}),
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

  describe('loads into a caller buffer (LoadOptions.into)', () => {
    const intoChecks = ['load into a caller buffer', 'load ignores an into buffer', 'consecutive loads reusing one into'];
    /** A memory storage whose load, given a usable `into`, copies the range into it and returns `result(into, n)`. */
    const intoVariant = (result: (into: Buffer, n: number) => Buffer, write?: (into: Buffer, all: Buffer, offset: number, n: number) => void) =>
      broken((inner) => ({
        load: async (h, l) => {
          const bytes = await inner.load(h, l && { offset: l.offset, length: l.length });
          const into = l?.into;
          if (!into || l.length === undefined || into.byteLength < l.length) return bytes;
          if (write) write(into, await inner.load(h), l.offset ?? 0, l.length);
          else bytes.copy(into, 0);
          return result(into, l.length);
        },
      }));

    it('passes on an adapter that ignores into, and on one that returns a view of it', async () => {
      const ignoring = broken((inner) => ({ load: (h, l) => inner.load(h, l && { offset: l.offset, length: l.length }) }));
      const viewing = intoVariant((into, n) => into.subarray(0, n));
      for (const setup of [ignoring, viewing]) for (const name of intoChecks) await run(setup, name);
    });

    it('a load that returns the whole into instead of a subarray is caught', async () => {
      const whole = intoVariant((into) => into);
      await expect(run(whole, 'load into a caller buffer')).rejects.toThrow(/got 101 bytes, expected 1/);
      await expect(run(whole, 'consecutive loads reusing one into')).rejects.toThrow(/got 8192 bytes, expected 8000/);
    });

    it('a load that returns a view of into at the wrong offset is caught', async () => {
      const shifted = intoVariant(
        (into, n) => into.subarray(1, 1 + n),
        (into, all, offset, n) => all.copy(into, 1, offset, offset + n),
      );
      await expect(run(shifted, 'load into a caller buffer')).rejects.toThrow(/view of into at offset 1/);
    });

    it('a load that writes into past the requested length is caught', async () => {
      // Reads ahead: fills all of into from the offset on (as far as the file goes).
      const greedy = intoVariant(
        (into, n) => into.subarray(0, n),
        (into, all, offset) => all.copy(into, 0, offset, Math.min(all.byteLength, offset + into.byteLength)),
      );
      await expect(run(greedy, 'load into a caller buffer')).rejects.toThrow(/written past the requested 1 bytes \(first at into\[1\]\)/);
    });

    it('a load that uses an into shorter than length (or one without length) is caught', async () => {
      // Fills what fits of a too-short into, then returns a buffer of its own.
      const overeager = broken((inner) => ({
        load: async (h, l) => {
          const bytes = await inner.load(h, l && { offset: l.offset, length: l.length });
          l?.into?.set(bytes.subarray(0, l.into.byteLength));
          return bytes;
        },
      }));
      await expect(run(overeager, 'load ignores an into buffer')).rejects.toThrow(/into was written to; it must be ignored/);
      // Returns a view of an into too short for the range: a short read.
      const truncating = broken((inner) => ({
        load: async (h, l) => {
          const bytes = await inner.load(h, l && { offset: l.offset, length: l.length });
          if (!l?.into || l.into.byteLength >= bytes.byteLength) return bytes;
          bytes.copy(l.into, 0, 0, l.into.byteLength);
          return l.into;
        },
      }));
      await expect(run(truncating, 'load ignores an into buffer')).rejects.toThrow(/got 999 bytes, expected 1000/);
    });

    it('a load that fills only part of the range (leaving garbage or stale bytes in into) is caught', async () => {
      // Copies only the first half of the range; the rest is whatever into held.
      const stale = intoVariant(
        (into, n) => into.subarray(0, n),
        (into, all, offset, n) => all.copy(into, 0, offset, offset + Math.ceil(n / 2)),
      );
      await expect(run(stale, 'consecutive loads reusing one into')).rejects.toThrow(/load 1 of 6 .*bytes differ first at offset/);
    });
  });

  it('passes removeMany on the memory adapter; a removeMany that fails on a missing file, or removes too much, is caught', async () => {
    await run({ open: async () => createMemoryStorage() }, 'removeMany');
    const strict = broken((inner) => ({
      removeMany: async (hs: Iterable<Handle>) => {
        for (const h of hs) await inner.remove(h);
      },
    }));
    await expect(run(strict, 'removeMany')).rejects.toThrow();
    const greedy = broken((inner) => ({
      removeMany: async () => {
        for await (const f of inner.list('data')) await inner.remove({ type: 'data', name: f.name });
      },
    }));
    await expect(run(greedy, 'removeMany')).rejects.toThrow(/list\(data\) after removeMany/);
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

  it('a preferredReadSize that is not a whole number of bytes >= 64 KiB fails its check; a good one passes', async () => {
    for (const bad of [0, 1000, 1.5 * 1024 * 1024 + 0.5, Number.NaN, -1]) {
      await expect(run(broken(() => ({ preferredReadSize: bad })), 'preferredReadSize'), String(bad)).rejects.toThrow(/preferredReadSize is/);
    }
    await run(broken(() => ({ preferredReadSize: 8 * 1024 * 1024 })), 'preferredReadSize');
    await run(broken(() => ({})), 'preferredReadSize');
  });

  describe('saveFrom (a save read from a source)', () => {
    const names = ['saveFrom (when', 'saveFrom refuses', 'saveFrom: no partial'];
    /** Every chunk of a source, concatenated (no size check). */
    const drain = async (source: SaveSource): Promise<Buffer> => {
      const parts: Buffer[] = [];
      for await (const c of source.open()) parts.push(Buffer.from(c));
      return Buffer.concat(parts);
    };

    it('passes on the memory adapter, and on an adapter without saveFrom', async () => {
      for (const name of names) {
        await run({ open: async () => createMemoryStorage() }, name);
        await run(broken(() => ({})), name);
      }
    });

    it('a saveFrom that keeps a reference to each chunk (not a copy) is caught', async () => {
      const keeps = broken((inner) => ({
        saveFrom: async (h: Handle, source: SaveSource) => {
          const chunks: Uint8Array[] = [];
          for await (const c of source.open()) chunks.push(c);
          // Stores the first chunk for every position: what a reused read buffer would leave.
          const out = Buffer.alloc(source.size);
          let pos = 0;
          for (const c of chunks) {
            out.set(chunks[0]!.subarray(0, c.byteLength), pos);
            pos += c.byteLength;
          }
          await inner.save(h, out);
        },
      }));
      await expect(run(keeps, 'saveFrom (when')).rejects.toThrow(/bytes differ/);
    });

    it('a saveFrom that stores whatever the source yields, whatever its size, is caught', async () => {
      const trusting = broken((inner) => ({ saveFrom: async (h: Handle, source: SaveSource) => inner.save(h, await drain(source)) }));
      await expect(run(trusting, 'saveFrom refuses')).rejects.toThrow(/expected a rejection/);
    });

    it('a saveFrom that makes the file visible before the source is read to the end is caught', async () => {
      const eager = broken((inner) => ({
        saveFrom: async (h: Handle, source: SaveSource) => {
          const parts: Buffer[] = [];
          for await (const c of source.open()) {
            parts.push(Buffer.from(c));
            await inner.save(h, Buffer.concat(parts));
          }
        },
      }));
      await expect(run(eager, 'saveFrom: no partial')).rejects.toThrow(/saw the file/);
    });
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
