/**
 * Checks of what `list` must leave out: entries of the repository's directories that are not the
 * files `load` reads. Kiwi trusts the listing — `check` compares listed sizes, `repair index`
 * indexes what is listed, `prune` deletes listed packs no index needs — so a listed entry that is
 * not the file of that name loses data, and a listed name core cannot use blocks every command.
 *
 * These checks put such entries in place past the adapter, through the setup's `writeRaw`
 * (see {@link RawWrite}); without it they pass without checking.
 */
import type { FileInfo, FileType, Handle, Storage } from '@kiwi-backup/core';
import { deterministicBytes } from './bytes.js';
import {
  assertListedOnce,
  assertSameBytes,
  check,
  describeErr,
  expectNotFound,
  fail,
  handleFor,
  type ConformanceCheck,
} from './check-helpers.js';

/** A `data/` subdirectory other than the one a pack named `name` belongs in. */
function otherDataDir(name: string): string {
  return name.startsWith('00') ? 'ff' : '00';
}

/** The whole listing of `type`, failing the check (not throwing the adapter's error) when `list` rejects. */
async function listAll(storage: Storage, type: FileType, what: string): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  try {
    for await (const info of storage.list(type)) out.push(info);
  } catch (err) {
    fail(`${what}: list(${type}) failed (${describeErr(err)}); an entry that is not a file of that type must be skipped, not fail the listing`);
  }
  return out;
}

const misplacedPacks: ConformanceCheck = {
  name: 'list skips a pack file outside its data/xx directory, even under a real pack\'s name',
  async run(storage, _options, raw) {
    if (!raw) return;
    await storage.create();
    const pack = deterministicBytes(5000, 'misplaced-real');
    const real = handleFor('data', pack);
    await storage.save(real, pack);
    // `echo x > data/00/<name of a pack that lives in data/a8/>`: listed, its 2 bytes would pass for the
    // pack's size (check calls the pack truncated, repair index drops it, prune deletes the real one).
    await raw(`data/${otherDataDir(real.name)}/${real.name}`, Buffer.from('x\n'));
    // `mv data/a8/<P> data/00/<P>`, and a pack dropped at the top of data/: listed, Kiwi would count
    // on a pack that `load` cannot find (a backup deduplicates against it, a restore fails).
    const movedBytes = deterministicBytes(3000, 'misplaced-moved');
    const moved = handleFor('data', movedBytes);
    await raw(`data/${otherDataDir(moved.name)}/${moved.name}`, movedBytes);
    await raw(`data/${moved.name}`, movedBytes);

    const want = new Map([[real.name, pack.byteLength]]);
    const what = 'list(data) with a 2-byte copy of a pack in another data/ directory, and a pack only outside its own';
    assertListedOnce(await listAll(storage, 'data', what), want, what);
    assertSameBytes(await storage.load(real), pack, 'load of the pack that has a misplaced copy');
    const info = await storage.stat(real);
    check(info.size === pack.byteLength, `stat of the pack that has a misplaced copy: size ${info.size}, expected ${pack.byteLength}`);
    await expectNotFound(storage, 'load of a pack that sits only outside its data/xx directory', () => storage.load(moved));
    // Other types are not affected.
    check((await listAll(storage, 'index', 'list(index)')).length === 0, 'list(index) yielded files; none was saved');
  },
};

const invalidNames: ConformanceCheck = {
  name: 'list skips names that are not valid for their type, and still lists the rest',
  async run(storage, _options, raw) {
    if (!raw) return;
    await storage.create();
    const want = new Map<FileType, Map<string, number>>();
    for (const type of ['key', 'lock', 'snapshot', 'index', 'data'] as const) {
      const data = deterministicBytes(40, `valid-${type}`);
      const handle: Handle = handleFor(type, data);
      await storage.save(handle, data);
      want.set(type, new Map([[handle.name, data.byteLength]]));
    }
    const pack = 'ab'.repeat(32);
    const junk = [
      // Names core refuses for any type (assertValidHandle): were one listed, every command would fail.
      'index/a b',
      'keys/key@host',
      'snapshots/snap shot',
      'locks/lock,1',
      // Not a pack's name (64 lowercase hex digits), though in the right directory.
      'data/ab/ab',
      `data/ab/${pack}.bak`,
      `data/ab/AB${pack.slice(2)}`,
      `data/ab/${pack.slice(0, 62)}zz`,
      // A directory that is not data/<2 hex>.
      `data/zz/zz${pack.slice(2)}`,
    ];
    for (const path of junk) await raw(path, Buffer.from('junk'));
    for (const [type, expected] of want) {
      const what = `list(${type}) with files of invalid names beside a valid one`;
      assertListedOnce(await listAll(storage, type, what), expected, what);
    }
  },
};

/** The listing checks that need the setup's `writeRaw`. */
export const listSkipChecks: readonly ConformanceCheck[] = [misplacedPacks, invalidNames];
