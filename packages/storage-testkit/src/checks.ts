import { AssertionError } from 'node:assert';
import { setImmediate as tick } from 'node:timers/promises';
import { FILE_TYPES, StorageError, handlePath, type FileInfo, type Handle, type Storage } from '@kiwi-backup/core';
import { deterministicBytes, sha256Hex } from './bytes.js';
import {
  assertListedOnce,
  assertSameBytes,
  check,
  collect,
  describeErr,
  describeValue,
  expectNotFound,
  expectReject,
  fail,
  handleFor,
  pool,
  type ConformanceCheck,
  type ConformanceOptions,
} from './check-helpers.js';
import { saveFromChecks } from './save-from-checks.js';

export { assertSameBytes, defaultConformanceOptions, type ConformanceCheck, type ConformanceOptions } from './check-helpers.js';

// ---------------------------------------------------------------- checks

const create: ConformanceCheck = {
  name: 'create() prepares an empty location, and again on an empty one',
  async run(storage) {
    await storage.create();
    for (const type of FILE_TYPES) {
      const listed = await collect(storage, type);
      check(listed.length === 0, `list(${type}) on a new repository yielded ${listed.length} files`);
    }
    await storage.create();
    const data = deterministicBytes(100, 'create');
    await storage.save(handleFor('key', data), data);
    assertSameBytes(await storage.load(handleFor('key', data)), data, 'load after create');
  },
};

const roundTrip: ConformanceCheck = {
  name: 'save/load round-trips every file type (0, 1 and 4097 bytes)',
  async run(storage) {
    await storage.create();
    for (const type of FILE_TYPES) {
      for (const size of [0, 1, 4097]) {
        const data = deterministicBytes(size, `${type}-${size}`);
        const handle = handleFor(type, data);
        const what = `${handlePath(handle)} (${size} bytes)`;
        await storage.save(handle, data);
        assertSameBytes(await storage.load(handle), data, `load ${what}`);
        const info = await storage.stat(handle);
        check(info.size === size, `stat ${what}: size ${info.size}, expected ${size}`);
        check(info.name === handle.name, `stat ${what}: name ${info.name}, expected ${handle.name}`);
      }
    }
  },
};

const bigFile: ConformanceCheck = {
  name: 'a big file round-trips byte for byte',
  async run(storage, { bigFileSize }) {
    await storage.create();
    const data = deterministicBytes(bigFileSize, 'big');
    const handle = handleFor('data', data);
    await storage.save(handle, data);
    assertSameBytes(await storage.load(handle), data, `load ${handlePath(handle)} (${bigFileSize} bytes)`);
    const info = await storage.stat(handle);
    check(info.size === bigFileSize, `stat big file: size ${info.size}, expected ${bigFileSize}`);
    const tail = Math.min(bigFileSize, 1024 * 1024);
    const offset = bigFileSize - tail;
    assertSameBytes(
      await storage.load(handle, { offset, length: tail }),
      data.subarray(offset),
      `ranged load of the last ${tail} bytes of the big file`,
    );
  },
};

const ranges: ConformanceCheck = {
  name: 'ranged loads return exactly the requested bytes; past the end rejects',
  async run(storage) {
    await storage.create();
    const size = 10_000;
    const data = deterministicBytes(size, 'ranges');
    const handle = handleFor('data', data);
    await storage.save(handle, data);
    const cases: Array<{ offset?: number; length?: number }> = [
      { offset: 0, length: 1 },
      { offset: 0, length: 100 },
      { length: 10 },
      { offset: 4321, length: 1234 },
      { offset: 5000, length: 1 },
      { offset: size - 1, length: 1 },
      { offset: size - 100, length: 100 },
      { offset: 9000 },
      { offset: 0 },
      { offset: 0, length: size },
    ];
    for (const range of cases) {
      const start = range.offset ?? 0;
      const end = range.length === undefined ? size : start + range.length;
      const got = await storage.load(handle, range);
      assertSameBytes(got, data.subarray(start, end), `load with ${JSON.stringify(range)}`);
    }
    for (const range of [
      { offset: size - 5, length: 10 },
      { offset: size, length: 1 },
      { offset: size + 1 },
      { offset: size + 100, length: 5 },
      { offset: 0, length: size + 1 },
    ]) {
      const err = await expectReject(`load with ${JSON.stringify(range)} (file has ${size} bytes)`, () =>
        storage.load(handle, range),
      );
      check(!storage.isNotFound(err), `load past the end: isNotFound() is true for ${describeErr(err)}; the file exists`);
    }
  },
};

// ------------------------------------------------ loads into a caller buffer (LoadOptions.into)

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

const stat: ConformanceCheck = {
  name: 'stat reports name and size',
  async run(storage) {
    await storage.create();
    for (const [type, size] of [
      ['snapshot', 0],
      ['index', 1],
      ['data', 12_345],
      ['config', 77],
    ] as const) {
      const data = deterministicBytes(size, `stat-${type}`);
      const handle = handleFor(type, data);
      await storage.save(handle, data);
      const info = await storage.stat(handle);
      check(info.size === size, `stat ${handlePath(handle)}: size ${info.size}, expected ${size}`);
      check(info.name === handle.name, `stat ${handlePath(handle)}: name ${info.name}, expected ${handle.name}`);
    }
  },
};

const listMany: ConformanceCheck = {
  name: 'list yields each of many files exactly once (pagination)',
  async run(storage, { manyFiles, saveConcurrency }) {
    await storage.create();
    const expected = new Map<string, number>();
    const items: Array<{ handle: Handle; data: Buffer }> = [];
    for (let i = 0; i < manyFiles; i++) {
      const data = deterministicBytes(16 + (i % 48), `many-${i}`);
      const handle = handleFor('data', data);
      expected.set(handle.name, data.byteLength);
      items.push({ handle, data });
    }
    await pool(items, saveConcurrency, ({ handle, data }) => storage.save(handle, data));
    // A few files of other types, which must not show up in the data listing.
    const others = new Map<string, number>();
    for (let i = 0; i < 3; i++) {
      const data = deterministicBytes(10 + i, `many-index-${i}`);
      await storage.save(handleFor('index', data), data);
      others.set(sha256Hex(data), data.byteLength);
    }
    assertListedOnce(await collect(storage, 'data'), expected, `list(data) of ${manyFiles} files`);
    assertListedOnce(await collect(storage, 'index'), others, 'list(index) of 3 files');
    // A second listing gives the same set.
    assertListedOnce(await collect(storage, 'data'), expected, `second list(data) of ${manyFiles} files`);
  },
};

const listTypes: ConformanceCheck = {
  name: 'list yields only the requested type; an empty type yields nothing',
  async run(storage) {
    await storage.create();
    const snap = deterministicBytes(50, 'list-snapshot');
    await storage.save(handleFor('snapshot', snap), snap);
    for (const type of FILE_TYPES) {
      if (type === 'snapshot') continue;
      const listed = await collect(storage, type);
      check(listed.length === 0, `list(${type}) yielded ${listed.map((f) => f.name).join(', ')}; only a snapshot exists`);
    }
    const expected = new Map<string, number>();
    for (const type of FILE_TYPES) {
      const data = deterministicBytes(20, `list-${type}`);
      const handle = handleFor(type, data);
      await storage.save(handle, data);
      expected.set(type, data.byteLength);
    }
    for (const type of FILE_TYPES) {
      const listed = await collect(storage, type);
      const want = new Map<string, number>();
      if (type === 'config') want.set('config', 20);
      else want.set(sha256Hex(deterministicBytes(20, `list-${type}`)), 20);
      if (type === 'snapshot') want.set(sha256Hex(snap), snap.byteLength);
      assertListedOnce(listed, want, `list(${type})`);
    }
  },
};

const remove: ConformanceCheck = {
  name: 'remove deletes a file and only that file',
  async run(storage) {
    await storage.create();
    const a = deterministicBytes(300, 'remove-a');
    const b = deterministicBytes(301, 'remove-b');
    const c = deterministicBytes(302, 'remove-c');
    await storage.save(handleFor('data', a), a);
    await storage.save(handleFor('data', b), b);
    await storage.save(handleFor('config', c), c);
    await storage.remove(handleFor('data', a));
    await expectNotFound(storage, 'stat of a removed file', () => storage.stat(handleFor('data', a)));
    await expectNotFound(storage, 'load of a removed file', () => storage.load(handleFor('data', a)));
    assertListedOnce(await collect(storage, 'data'), new Map([[sha256Hex(b), 301]]), 'list(data) after remove');
    assertSameBytes(await storage.load(handleFor('data', b)), b, 'load of the file that was not removed');
    await storage.remove(handleFor('config', c));
    await expectNotFound(storage, 'stat of a removed config', () => storage.stat(handleFor('config', c)));
    check((await collect(storage, 'config')).length === 0, 'list(config) after removing config is not empty');
  },
};

const removeMany: ConformanceCheck = {
  name: 'removeMany (when the storage has it) deletes exactly the files named; missing ones are fine',
  async run(storage) {
    if (!storage.removeMany) return;
    await storage.create();
    const files = Array.from({ length: 5 }, (_, i) => deterministicBytes(400 + i, `remove-many-${i}`));
    for (const f of files) await storage.save(handleFor('data', f), f);
    const keep = files[4]!;
    const missing: Handle = { type: 'data', name: 'ee'.padEnd(64, '0') };
    await storage.removeMany([...files.slice(0, 4).map((f) => handleFor('data', f)), missing]);
    for (const f of files.slice(0, 4)) await expectNotFound(storage, 'stat of a file removeMany removed', () => storage.stat(handleFor('data', f)));
    assertListedOnce(await collect(storage, 'data'), new Map([[sha256Hex(keep), keep.byteLength]]), 'list(data) after removeMany');
    await storage.removeMany([]);
  },
};

const notFound: ConformanceCheck = {
  name: 'load/stat/remove of a missing file reject with isNotFound(err) === true',
  async run(storage) {
    await storage.create();
    const missing: Handle[] = [
      { type: 'data', name: 'ab'.padEnd(64, '0') },
      { type: 'key', name: 'f'.repeat(64) },
      { type: 'snapshot', name: '0'.repeat(64) },
      { type: 'config', name: 'config' },
    ];
    for (const handle of missing) {
      const p = handlePath(handle);
      await expectNotFound(storage, `load ${p}`, () => storage.load(handle));
      await expectNotFound(storage, `ranged load ${p}`, () => storage.load(handle, { offset: 1, length: 2 }));
      await expectNotFound(storage, `stat ${p}`, () => storage.stat(handle));
      await expectNotFound(storage, `remove ${p}`, () => storage.remove(handle));
    }
  },
};

const notFoundOnly: ConformanceCheck = {
  name: 'isNotFound is false for other errors',
  async run(storage) {
    await storage.create();
    const others: Array<[string, unknown]> = [
      ['a plain Error', new Error('boom')],
      ['an Error with code ECONNRESET', Object.assign(new Error('reset'), { code: 'ECONNRESET' })],
      ['a transient StorageError', new StorageError('timeout', { kind: 'transient' })],
      ['a permission StorageError', new StorageError('denied', { kind: 'permission' })],
      ['undefined', undefined],
      ['null', null],
      ['a string', 'not found'],
      ['a number', 404],
    ];
    for (const [what, err] of others) {
      check(storage.isNotFound(err) === false, `isNotFound(${what}) is not false`);
    }
    const data = deterministicBytes(10, 'notfound-only');
    const handle = handleFor('data', data);
    await storage.save(handle, data);
    const rangeErr = await expectReject('load past the end', () => storage.load(handle, { offset: 5, length: 50 }));
    check(!storage.isNotFound(rangeErr), `isNotFound is true for a past-the-end error: ${describeErr(rangeErr)}`);
  },
};

const overwrite: ConformanceCheck = {
  name: 'saving an existing name replaces its content',
  async run(storage) {
    await storage.create();
    const handle: Handle = { type: 'lock', name: 'a'.repeat(64) };
    for (const [size, seed] of [
      [5000, 'first'],
      [100, 'shorter'],
      [9000, 'longer'],
      [0, 'empty'],
      [33, 'last'],
    ] as const) {
      const data = deterministicBytes(size, `overwrite-${seed}`);
      await storage.save(handle, data);
      assertSameBytes(await storage.load(handle), data, `load after overwriting with ${size} bytes`);
      const info = await storage.stat(handle);
      check(info.size === size, `stat after overwriting with ${size} bytes: size ${info.size}`);
      assertListedOnce(await collect(storage, 'lock'), new Map([[handle.name, size]]), 'list(lock) after overwrite');
    }
  },
};

const concurrentSaves: ConformanceCheck = {
  name: '16 concurrent saves all land',
  async run(storage) {
    await storage.create();
    const files = Array.from({ length: 16 }, (_, i) => deterministicBytes(64 * 1024 + i * 1000, `concurrent-${i}`));
    await Promise.all(files.map((data) => storage.save(handleFor('data', data), data)));
    await Promise.all(
      files.map(async (data, i) => assertSameBytes(await storage.load(handleFor('data', data)), data, `load concurrent file ${i}`)),
    );
    assertListedOnce(
      await collect(storage, 'data'),
      new Map(files.map((d) => [sha256Hex(d), d.byteLength])),
      'list(data) after 16 concurrent saves',
    );
  },
};

const concurrentSameName: ConformanceCheck = {
  name: 'concurrent saves of one name leave one whole version',
  async run(storage) {
    await storage.create();
    const handle: Handle = { type: 'lock', name: 'b'.repeat(64) };
    const versions = Array.from({ length: 6 }, (_, i) => deterministicBytes(20_000 + i * 3_333, `same-${i}`));
    await Promise.all(versions.map((data) => storage.save(handle, data)));
    const got = await storage.load(handle);
    const match = versions.find((v) => v.equals(got));
    check(match !== undefined, `after concurrent saves of one name, load gave ${got.byteLength} bytes matching no version`);
    assertListedOnce(await collect(storage, 'lock'), new Map([[handle.name, match.byteLength]]), 'list(lock)');
  },
};

const atomic: ConformanceCheck = {
  name: 'no partial file is visible while a big save runs',
  async run(storage, { bigFileSize }) {
    await storage.create();
    const data = deterministicBytes(bigFileSize, 'atomic');
    const handle = handleFor('data', data);
    let done = false;
    const saving = storage.save(handle, data).finally(() => {
      done = true;
    });
    saving.catch(() => undefined);
    let polls = 0;
    while (!done) {
      polls++;
      try {
        const info = await storage.stat(handle);
        check(info.size === data.byteLength, `stat during save saw size ${info.size} of ${data.byteLength}`);
      } catch (err) {
        if (err instanceof AssertionError) throw err;
        check(storage.isNotFound(err), `stat during save failed: ${describeErr(err)}`);
      }
      for (const info of await collect(storage, 'data')) {
        check(info.name === handle.name, `list during save yielded an unexpected file ${info.name}`);
        check(info.size === data.byteLength, `list during save saw size ${info.size} of ${data.byteLength}`);
      }
      if (polls % 4 === 0) {
        try {
          assertSameBytes(await storage.load(handle), data, 'load during save');
        } catch (err) {
          if (err instanceof AssertionError) throw err;
          check(storage.isNotFound(err), `load during save failed: ${describeErr(err)}`);
        }
      }
      await tick();
    }
    await saving;
    assertSameBytes(await storage.load(handle), data, 'load after the big save');
  },
};

const atomicOverwrite: ConformanceCheck = {
  name: 'overwriting a file shows the old or the new content, never a mix',
  async run(storage, { bigFileSize }) {
    await storage.create();
    const handle: Handle = { type: 'lock', name: 'c'.repeat(64) };
    const size = Math.max(1, Math.floor(bigFileSize / 2));
    const before = deterministicBytes(size, 'overwrite-before');
    const after = deterministicBytes(size + 1, 'overwrite-after');
    await storage.save(handle, before);
    let done = false;
    const saving = storage.save(handle, after).finally(() => {
      done = true;
    });
    saving.catch(() => undefined);
    while (!done) {
      try {
        const got = await storage.load(handle);
        check(
          got.equals(before) || got.equals(after),
          `load during an overwrite gave ${got.byteLength} bytes that are neither the old (${before.byteLength}) nor the new (${after.byteLength}) content`,
        );
      } catch (err) {
        if (err instanceof AssertionError) throw err;
        check(storage.isNotFound(err), `load during an overwrite failed: ${describeErr(err)}`);
      }
      await tick();
    }
    await saving;
    assertSameBytes(await storage.load(handle), after, 'load after the overwrite');
  },
};

const copies: ConformanceCheck = {
  name: 'saved and loaded buffers are independent; Uint8Array views are saved exactly',
  async run(storage) {
    await storage.create();
    const original = deterministicBytes(1000, 'copies');
    const buf = Buffer.from(original);
    const handle = handleFor('index', original);
    await storage.save(handle, buf);
    buf.fill(0);
    const loaded = await storage.load(handle);
    assertSameBytes(loaded, original, 'load after the caller overwrote its buffer');
    loaded.fill(1);
    assertSameBytes(await storage.load(handle), original, 'load after the caller overwrote a loaded buffer');

    const big = deterministicBytes(4096, 'views');
    const view = new Uint8Array(big.buffer, big.byteOffset + 100, 1000);
    const viewHandle = handleFor('index', view);
    await storage.save(viewHandle, view);
    assertSameBytes(await storage.load(viewHandle), big.subarray(100, 1100), 'load of a saved Uint8Array view');
    const info = await storage.stat(viewHandle);
    check(info.size === 1000, `stat of a saved 1000-byte view: size ${info.size}`);
  },
};

const unsafeNames: ConformanceCheck = {
  name: 'unsafe handle names are rejected',
  async run(storage) {
    await storage.create();
    const data = deterministicBytes(10, 'unsafe');
    for (const handle of [
      { type: 'key', name: '../escape' },
      { type: 'snapshot', name: 'a/b' },
      { type: 'index', name: '' },
      { type: 'data', name: '..' },
      { type: 'bogus', name: 'abcd' },
    ] as unknown as Handle[]) {
      await expectReject(`save ${JSON.stringify(handle)}`, () => storage.save(handle, data));
      await expectReject(`load ${JSON.stringify(handle)}`, () => storage.load(handle));
    }
  },
};

const close: ConformanceCheck = {
  name: 'close() resolves',
  closesStorage: true,
  async run(storage) {
    await storage.create();
    const data = deterministicBytes(10, 'close');
    await storage.save(handleFor('key', data), data);
    await storage.close();
  },
};

const readSizeHint: ConformanceCheck = {
  name: 'preferredReadSize, when given, is a whole number of bytes of at least 64 KiB',
  async run(storage) {
    const hint: unknown = storage.preferredReadSize;
    if (hint === undefined) return;
    check(
      typeof hint === 'number' && Number.isSafeInteger(hint) && hint >= 64 * 1024,
      `preferredReadSize is ${String(hint)}: leave it undefined, or give a whole number of bytes >= 65536`,
    );
  },
};

/** Every check, in the order `describeStorageConformance` runs them. */
export const conformanceChecks: readonly ConformanceCheck[] = [
  create,
  roundTrip,
  bigFile,
  ranges,
  loadInto,
  loadIntoIgnored,
  loadIntoReused,
  stat,
  listMany,
  listTypes,
  remove,
  removeMany,
  notFound,
  notFoundOnly,
  overwrite,
  concurrentSaves,
  concurrentSameName,
  atomic,
  atomicOverwrite,
  copies,
  unsafeNames,
  readSizeHint,
  ...saveFromChecks,
  close,
];

/** Look a check up by name (for the kit's own tests). */
export function conformanceCheck(name: string): ConformanceCheck {
  const found = conformanceChecks.find((c) => c.name === name || c.name.startsWith(name));
  if (!found) throw new Error(`no conformance check named ${JSON.stringify(name)}`);
  return found;
}
