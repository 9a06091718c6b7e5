/**
 * Checks of loads into a caller's buffer (`LoadOptions.into`): the adapter may read a ranged load
 * into it, and must then write nothing past the range, return exactly the requested bytes, and
 * leave the buffer alone once the load settles.
 */
import { handlePath, type Handle, type Storage } from '@kiwi-backup/core';
import { deterministicBytes } from './bytes.js';
import { assertSameBytes, check, describeErr, expectNotFound, expectReject, fail, handleFor, type ConformanceCheck } from './check-helpers.js';


/** Bytes that are unlikely to match any file: what a reused `into` holds before a load. */
function garbage(n: number, seed: string): Buffer {
  const buf = Buffer.alloc(n); // never from Node's shared pool: `into` has an ArrayBuffer of its own
  deterministicBytes(n, `garbage-${seed}`).copy(buf);
  return buf;
}

/** True if `a` and `b` share memory (a view of one lies over the other). */
function overlaps(a: Uint8Array, b: Uint8Array): boolean {
  if (a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/**
 * `load(handle, { ...range, into })` with an `into` big enough for the range: the result must be
 * exactly `expected` (its length is the requested length, whatever `into`'s size), a view of
 * `into` only at its start, and `into` past the requested length must be unchanged.
 */
async function loadIntoChecked(
  storage: Storage,
  handle: Handle,
  range: { offset?: number; length: number },
  into: Buffer,
  expected: Uint8Array,
  what: string,
): Promise<Buffer> {
  const tailBefore = Buffer.from(into.subarray(range.length));
  const got = await storage.load(handle, { ...range, into });
  assertSameBytes(got, expected, what);
  if (overlaps(got, into)) {
    check(
      got.byteOffset === into.byteOffset,
      `${what}: the result is a view of into at offset ${got.byteOffset - into.byteOffset}; it must start at into[0]`,
    );
  }
  const tail = into.subarray(range.length);
  if (!tail.equals(tailBefore)) {
    let i = 0;
    while (tail[i] === tailBefore[i]) i++;
    fail(`${what}: into was written past the requested ${range.length} bytes (first at into[${range.length + i}])`);
  }
  return got;
}

const loadInto: ConformanceCheck = {
  name: 'load into a caller buffer returns exactly the requested bytes, writing none past them',
  async run(storage, { bigFileSize }) {
    await storage.create();
    const size = 10_000;
    const data = deterministicBytes(size, 'into');
    const handle = handleFor('data', data);
    await storage.save(handle, data);
    const cases: Array<{ offset?: number; length: number; spare: number }> = [
      { offset: 0, length: 1, spare: 100 },
      { length: 10, spare: 4096 },
      { offset: 4321, length: 1234, spare: 1 },
      { offset: 4321, length: 1234, spare: 0 }, // into exactly as long as the range
      { offset: size - 100, length: 100, spare: 50 },
      { offset: 0, length: size, spare: 999 },
      { offset: 5000, length: 0, spare: 16 },
    ];
    for (const { spare, ...range } of cases) {
      const start = range.offset ?? 0;
      const into = garbage(range.length + spare, `${start}-${range.length}`);
      await loadIntoChecked(
        storage,
        handle,
        range,
        into,
        data.subarray(start, start + range.length),
        `load with ${JSON.stringify(range)} into a ${into.byteLength}-byte buffer`,
      );
    }
    // A bigger range: several network reads or chunks on remote adapters.
    const bigSize = Math.max(2, Math.min(bigFileSize, 4 * 1024 * 1024 + 123));
    const big = deterministicBytes(bigSize, 'into-big');
    const bigHandle = handleFor('data', big);
    await storage.save(bigHandle, big);
    const range = { offset: 1, length: bigSize - 2 };
    await loadIntoChecked(
      storage,
      bigHandle,
      range,
      garbage(range.length + 64 * 1024, 'big'),
      big.subarray(1, bigSize - 1),
      `load with ${JSON.stringify(range)} of a ${bigSize}-byte file into a bigger buffer`,
    );
    // Concurrent loads, each into its own buffer.
    await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const r = { offset: i * 2000 + 7, length: 1500 + i };
        const into = garbage(r.length + 10, `concurrent-${i}`);
        await loadIntoChecked(storage, handle, r, into, data.subarray(r.offset, r.offset + r.length), `concurrent load ${i} with into`);
      }),
    );
    // A range past the end still rejects (and not as not-found); a missing file is still not-found.
    const err = await expectReject(`load with {"offset":${size - 5},"length":10} and into (file has ${size} bytes)`, () =>
      storage.load(handle, { offset: size - 5, length: 10, into: garbage(10, 'past') }),
    );
    check(!storage.isNotFound(err), `load past the end with into: isNotFound() is true for ${describeErr(err)}; the file exists`);
    const missing: Handle = { type: 'data', name: 'cd'.padEnd(64, '0') };
    await expectNotFound(storage, `load ${handlePath(missing)} with into`, () =>
      storage.load(missing, { offset: 0, length: 10, into: garbage(10, 'missing') }),
    );
  },
};

const loadIntoIgnored: ConformanceCheck = {
  name: 'load ignores an into buffer shorter than length, or without length',
  async run(storage) {
    await storage.create();
    const size = 5000;
    const data = deterministicBytes(size, 'into-ignored');
    const handle = handleFor('data', data);
    await storage.save(handle, data);
    const cases: Array<{ offset?: number; length?: number; intoSize: number }> = [
      { offset: 100, length: 1000, intoSize: 999 }, // one byte short
      { offset: 0, length: size, intoSize: 10 },
      { offset: 7, length: 1, intoSize: 0 },
      { offset: 4000, intoSize: 2000 }, // no length: to the end of the file (1000 bytes)
      { intoSize: size + 100 }, // no length, whole file
    ];
    for (const { intoSize, ...range } of cases) {
      const into = garbage(intoSize, `ignored-${intoSize}`);
      const before = Buffer.from(into);
      const start = range.offset ?? 0;
      const end = range.length === undefined ? size : start + range.length;
      const what = `load with ${JSON.stringify(range)} and a ${intoSize}-byte into`;
      const got = await storage.load(handle, { ...range, into });
      assertSameBytes(got, data.subarray(start, end), what);
      check(!overlaps(got, into) || got.byteLength === 0, `${what}: the result is a view of the into buffer it must ignore`);
      check(into.equals(before), `${what}: into was written to; it must be ignored`);
    }
  },
};

const loadIntoReused: ConformanceCheck = {
  name: 'consecutive loads reusing one into buffer each return their own bytes',
  async run(storage) {
    await storage.create();
    const a = deterministicBytes(9000, 'reuse-a');
    const b = deterministicBytes(6000, 'reuse-b');
    const ha = handleFor('data', a);
    const hb = handleFor('data', b);
    await storage.save(ha, a);
    await storage.save(hb, b);
    const into = garbage(8192, 'reuse');
    // Each load's result is checked before the next load reuses the buffer (the caller's side of
    // the contract); the later loads are shorter, so stale bytes of earlier ones would show.
    const steps: Array<[Handle, Buffer, { offset: number; length: number }]> = [
      [ha, a, { offset: 500, length: 8000 }],
      [hb, b, { offset: 10, length: 5000 }],
      [ha, a, { offset: 8990, length: 10 }],
      [hb, b, { offset: 0, length: 6000 }],
      [hb, b, { offset: 0, length: 6000 }],
      [ha, a, { offset: 3, length: 1 }],
    ];
    for (const [i, [handle, data, range]] of steps.entries()) {
      await loadIntoChecked(
        storage,
        handle,
        range,
        into,
        data.subarray(range.offset, range.offset + range.length),
        `load ${i + 1} of ${steps.length} (${JSON.stringify(range)}) reusing one 8192-byte into`,
      );
    }
  },
};

/** The `into` checks, in the order they run. */
export const loadIntoChecks: readonly ConformanceCheck[] = [loadInto, loadIntoIgnored, loadIntoReused];
