import { AssertionError } from 'node:assert';
import { setImmediate as tick } from 'node:timers/promises';
import { FILE_TYPES, StorageError, handlePath, type Handle } from '@kiwi-backup/core';
import { deterministicBytes, sha256Hex } from './bytes.js';
import {
  assertListedOnce,
  assertSameBytes,
  check,
  collect,
  describeErr,
  expectNotFound,
  expectReject,
  handleFor,
  pool,
  type ConformanceCheck,
} from './check-helpers.js';
import { listSkipChecks } from './list-checks.js';
import { loadIntoChecks } from './load-into-checks.js';
import { saveFromChecks } from './save-from-checks.js';

export { assertSameBytes, defaultConformanceOptions, type ConformanceCheck, type ConformanceOptions, type RawWrite } from './check-helpers.js';

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

const maxLength: ConformanceCheck = {
  name: 'load with maxLength: a whole load longer than it is refused as integrity (or ignored), a range is not limited',
  async run(storage, options) {
    await storage.create();
    const data = deterministicBytes(10_000, 'max-length');
    const handle = handleFor('index', data);
    await storage.save(handle, data);
    assertSameBytes(await storage.load(handle, { maxLength: 10_000 }), data, 'load with maxLength equal to the size');
    assertSameBytes(await storage.load(handle, { maxLength: 1 << 20 }), data, 'load with maxLength above the size');
    // With `length`, maxLength says nothing: the caller asked for that many bytes.
    assertSameBytes(await storage.load(handle, { offset: 100, length: 5000, maxLength: 10 }), data.subarray(100, 5100), 'ranged load with a smaller maxLength');
    let got: Buffer | undefined;
    let err: unknown;
    try {
      got = await storage.load(handle, { maxLength: 9_999 });
    } catch (e) {
      err = e;
    }
    if (got !== undefined) {
      check(!options.honorsMaxLength, `load with maxLength 9999 of a 10000-byte file returned ${got.byteLength} bytes; this adapter is set to refuse it`);
      assertSameBytes(got, data, 'load with a smaller maxLength, not refused');
      return;
    }
    check(err instanceof StorageError && err.kind === 'integrity', `load with maxLength 9999 of a 10000-byte file: expected a StorageError of kind integrity, got ${describeErr(err)}`);
    check(!storage.isNotFound(err), `load with a smaller maxLength: isNotFound() is true for ${describeErr(err)}; the file exists`);
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
  maxLength,
  ...loadIntoChecks,
  stat,
  listMany,
  listTypes,
  ...listSkipChecks,
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
