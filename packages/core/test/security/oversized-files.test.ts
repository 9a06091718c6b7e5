/**
 * Files larger than any valid file of their kind (`truncate -s 3G index/eeee…`): Kiwi checks a
 * file's size (from the listing, else a stat) before it loads it whole, refuses it as damage
 * naming the file and the limit, and goes on as for any other damaged file of that kind. Packs
 * are read in pieces by `check --read-data`, never whole. Before, every one of these files was
 * loaded whole (a crash, or gigabytes of memory).
 */
import { describe, expect, it } from 'vitest';
import type { FileInfo, FileType, Handle, LoadOptions } from '../../src/storage/types.js';
import { handlePath, tooLongError } from '../../src/storage/types.js';
import { IntegrityError } from '../../src/repository/errors.js';
import { PACK_READ_SIZE } from '../../src/repository/pack-reader.js';
import { MAX_CONFIG_FILE_SIZE, MAX_INDEX_FILE_SIZE, MAX_KEY_FILE_SIZE, MAX_LOCK_FILE_SIZE, MAX_PACK_SIZE, MAX_SNAPSHOT_FILE_SIZE } from '../../src/repository/limits.js';
import { listLocks } from '../../src/repository/lock.js';
import { Repository } from '../../src/repository/repository.js';
import { FAST_KDF, MapStorage, quietLogger, random } from '../repository/helpers.js';

const GB = 1e9;
const A = 'a'.repeat(64);
const E = 'e'.repeat(64);
/** Listed before any other key file, so that opening reads it first. */
const ZERO = '0'.repeat(64);

/**
 * A storage where some files are huge: listings and stats give their claimed size, and their
 * content is zeros (as `truncate -s` makes). A read of one longer than check's pieces is recorded
 * and refused (it stands for the crash or the gigabytes); other reads are measured.
 */
class OversizedStorage extends MapStorage {
  private readonly claimed = new Map<string, number>();
  /** Reads of an oversized file that a real storage would have had to hold in memory. */
  readonly hugeReads: string[] = [];
  /** The longest read of any file. */
  longestRead = 0;

  /** Put a `size`-byte file of zeros at `handle` (kept as a size only). */
  claim(handle: Handle, size: number): void {
    this.files.set(handlePath(handle), Buffer.alloc(0));
    this.claimed.set(handlePath(handle), size);
  }

  /** Files whose listing and stat give their real small size, but whose loads find `size` bytes (a server that disagrees with itself). */
  private readonly lying = new Map<string, number>();
  /** The `maxLength` of every load of a lying file. */
  readonly maxLengths: Array<number | undefined> = [];

  lie(handle: Handle, size: number): void {
    this.lying.set(handlePath(handle), size);
  }

  override async load(handle: Handle, options: LoadOptions = {}): Promise<Buffer> {
    const lied = this.lying.get(handlePath(handle));
    if (lied !== undefined) {
      // As an adapter that learns the length from the server's answer does (LoadOptions.maxLength).
      this.maxLengths.push(options.maxLength);
      const length = options.length ?? lied - (options.offset ?? 0);
      if (options.length === undefined && options.maxLength !== undefined && length > options.maxLength) throw tooLongError(handlePath(handle), length, options.maxLength);
      this.hugeReads.push(handlePath(handle));
      throw new RangeError(`test storage: a read of ${length} bytes of ${handlePath(handle)}`);
    }
    const size = this.claimed.get(handlePath(handle));
    if (size === undefined) {
      const bytes = await super.load(handle, options);
      this.longestRead = Math.max(this.longestRead, bytes.byteLength);
      return bytes;
    }
    const length = options.length ?? size - (options.offset ?? 0);
    if (length > PACK_READ_SIZE) {
      this.hugeReads.push(handlePath(handle));
      throw new RangeError(`test storage: a read of ${length} bytes of ${handlePath(handle)}`);
    }
    return Buffer.alloc(length);
  }

  override async stat(handle: Handle): Promise<FileInfo> {
    const size = this.claimed.get(handlePath(handle));
    return size === undefined ? super.stat(handle) : { name: handle.name, size };
  }

  override async *list(type: FileType): AsyncIterable<FileInfo> {
    for await (const f of super.list(type)) {
      const path = handlePath({ type, name: f.name });
      yield { name: f.name, size: this.claimed.get(path) ?? f.size };
    }
  }
}

/** A repository with one snapshot of a few blobs, over an {@link OversizedStorage}. */
async function repository(packSize = 64 * 1024) {
  const storage = new OversizedStorage();
  const repo = await Repository.init(storage, 'secret', { kdf: FAST_KDF, logger: quietLogger(), packSize });
  const content = [random(30_000), random(30_000)];
  const ids = [];
  for (const c of content) ids.push((await repo.saveBlob('data', c)).id);
  const file = { name: 'f', type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtimeNs: '0', ctimeNs: '0', inode: '1', dev: '1', size: 60_000, content: ids };
  const tree = await repo.saveTree({ nodes: [file] });
  await repo.flush();
  const snapshot = await repo.saveSnapshot({ time: '2026-01-01T00:00:00.000Z', hostname: 'h', username: 'u', paths: ['/f'], tags: [], tree, programVersion: 'test' });
  await repo.close();
  const logger = quietLogger();
  const reopen = () => Repository.open(storage, 'secret', { kdf: FAST_KDF, logger });
  return { storage, snapshot, content, ids, reopen, logger };
}

describe('a file larger than any valid file of its kind is refused before it is read', () => {
  it('index/: the loader skips it as a damaged index file and loads the rest; check reports it and goes on', async () => {
    const { storage, snapshot, content, ids, reopen } = await repository();
    storage.claim({ type: 'index', name: E }, 1.5 * GB);
    const repo = await reopen();
    const loaded = await repo.loadIndex();
    const message = `index/${E}: 1500000000 bytes, more than an index file may have (${MAX_INDEX_FILE_SIZE}): the file is damaged`;
    expect(loaded.damagedFiles).toEqual([{ file: `index/${E}`, message }]);
    expect((await repo.loadBlob('data', ids[1]!)).equals(content[1]!)).toBe(true);
    expect((await repo.listSnapshots()).map((s) => s.id)).toEqual([snapshot]);
    const report = await repo.check({ readData: true });
    expect(report.errors).toEqual([{ file: `index/${E}`, message: message.slice(`index/${E}: `.length), hint: 'kiwi repair index' }]);
    expect(report.stats.trees).toBe(1);
    await repo.close();
    expect(storage.hugeReads).toEqual([]);
  });

  it('a storage whose load finds more than its listing said: the limit of the type goes with the load, refused as damage before anything is allocated', async () => {
    const { storage, snapshot, reopen } = await repository();
    // A real index file, then a snapshot file, that the storage now serves as 1.5 GB.
    const indexFile = storage.paths('index/')[0]!.slice('index/'.length);
    storage.lie({ type: 'index', name: indexFile }, 1.5 * GB);
    const repo = await reopen();
    const loaded = await repo.loadIndex();
    expect(loaded.damagedFiles).toEqual([{ file: `index/${indexFile}`, message: expect.stringMatching(new RegExp(`^index/${indexFile}: larger than an index file may have \\(${MAX_INDEX_FILE_SIZE}\\) when read: the file is damaged`)) }]);
    await repo.close();
    storage.lie({ type: 'snapshot', name: snapshot }, 1.5 * GB);
    const again = await reopen();
    await expect(again.loadSnapshot(snapshot)).rejects.toThrow(IntegrityError);
    await again.close();
    expect(storage.maxLengths).toContain(MAX_INDEX_FILE_SIZE);
    expect(storage.maxLengths).toContain(MAX_SNAPSHOT_FILE_SIZE);
    expect(storage.hugeReads).toEqual([]);
  });

  it('snapshots/: listing skips it (onError names it and the limit), loading it fails, check reports it', async () => {
    const { storage, snapshot, reopen } = await repository();
    storage.claim({ type: 'snapshot', name: E }, 3 * GB);
    const repo = await reopen();
    const skipped: Array<[string, string]> = [];
    const list = await repo.listSnapshots({ onError: (file, err) => skipped.push([file, err.message]) });
    expect(list.map((s) => s.id)).toEqual([snapshot]);
    const message = `snapshots/${E}: 3000000000 bytes, more than a snapshot file may have (${MAX_SNAPSHOT_FILE_SIZE}): the file is damaged`;
    expect(skipped).toEqual([[`snapshots/${E}`, message]]);
    await expect(repo.listSnapshots()).rejects.toThrow(IntegrityError);
    // By id (the size then comes from a stat), and by prefix (from the listing).
    await expect(repo.loadSnapshot(E)).rejects.toThrow(message);
    await expect(repo.findSnapshot('eeee')).rejects.toThrow(message);
    expect((await repo.findSnapshot('latest')).id).toBe(snapshot);
    const report = await repo.check();
    expect(report.errors).toEqual([expect.objectContaining({ file: `snapshots/${E}`, message: message.slice(`snapshots/${E}: `.length) })]);
    await repo.close();
    expect(storage.hugeReads).toEqual([]);
  });

  it('keys/: open skips it with a warning and opens with another key; check reports it', async () => {
    const { storage, reopen, logger } = await repository();
    storage.claim({ type: 'key', name: ZERO }, 1 * GB);
    const repo = await reopen();
    const message = `keys/${ZERO}: 1000000000 bytes, more than a key file may have (${MAX_KEY_FILE_SIZE}): the file is damaged`;
    expect(logger.lines.join('\n')).toContain(message);
    const report = await repo.check();
    expect(report.errors).toEqual([expect.objectContaining({ file: `keys/${ZERO}`, message: message.slice(`keys/${ZERO}: `.length) })]);
    // Listed as damaged (key remove can take it away), never read.
    expect((await repo.listKeys()).find((k) => k.id === ZERO)).toMatchObject({ current: false, damaged: expect.stringContaining(message.slice(0, 60)) });
    await repo.close();
    expect(storage.hugeReads).toEqual([]);
  });

  it('locks/: taking a lock ignores it with a warning; listing the locks names it', async () => {
    const { storage, reopen, logger } = await repository();
    storage.claim({ type: 'lock', name: A }, 1 * GB);
    const repo = await reopen();
    const lock = await repo.lock('exclusive');
    await lock.release();
    const message = `locks/${A}: 1000000000 bytes, more than a lock file may have (${MAX_LOCK_FILE_SIZE}): the file is damaged`;
    expect(logger.lines.join('\n')).toContain(message);
    expect(await listLocks(repo.lockContext())).toEqual([{ file: `locks/${A}`, name: A, error: message }]);
    await repo.close();
    expect(storage.hugeReads).toEqual([]);
  });

  it('config: open fails naming it (a damaged repository); check reports it', async () => {
    const { storage, reopen } = await repository();
    const repo = await reopen();
    storage.claim({ type: 'config', name: 'config' }, 2 * GB);
    const message = `config: 2000000000 bytes, more than a config file may have (${MAX_CONFIG_FILE_SIZE}): the file is damaged`;
    await expect(reopen()).rejects.toMatchObject({ name: 'IntegrityError', file: 'config', message });
    expect((await repo.check()).errors).toEqual([{ file: 'config', message: `cannot be read or authenticated: ${message}` }]);
    await repo.close();
    expect(storage.hugeReads).toEqual([]);
  });

  it('data/: an unindexed file larger than any pack is a warning for check and an error for check --read-data, never read', async () => {
    const { storage, reopen } = await repository();
    storage.claim({ type: 'data', name: E }, MAX_PACK_SIZE + 1);
    storage.claim({ type: 'data', name: A }, 64e6);
    const repo = await reopen();
    const report = await repo.check({ readData: true });
    expect(report.warnings.map((w) => [w.file, w.message])).toEqual(
      expect.arrayContaining([
        [handlePath({ type: 'data', name: A }), expect.stringMatching(/header cannot be read \(.*header length 0 is impossible for a 64000000-byte pack\)/)],
        [handlePath({ type: 'data', name: E }), expect.stringMatching(new RegExp(`header cannot be read \\(.*${MAX_PACK_SIZE + 1} bytes, larger than any pack may be \\(${MAX_PACK_SIZE}\\)\\)`))],
      ]),
    );
    expect(report.errors).toContainEqual({ file: handlePath({ type: 'data', name: E }), message: `is ${MAX_PACK_SIZE + 1} bytes, larger than any pack may be (${MAX_PACK_SIZE}): not read` });
    // A backup's index load (it lists the packs) finds both unreadable and adopts neither.
    const loaded = await repo.loadIndex({ verifyPacks: true });
    expect(loaded.unreadablePacks.map((p) => p.file).sort()).toEqual([handlePath({ type: 'data', name: A }), handlePath({ type: 'data', name: E })].sort());
    await repo.close();
    // (The 64 MB one was read by check --read-data in pieces; the one too large for a pack not at all.)
    expect(storage.hugeReads).toEqual([]);
  });
});

describe('check --read-data reads a pack in pieces', () => {
  it(`no read is longer than ${PACK_READ_SIZE} bytes; a flipped byte in the middle of the pack is still found`, async () => {
    const storage = new OversizedStorage();
    const repo = await Repository.init(storage, 'secret', { kdf: FAST_KDF, logger: quietLogger() });
    // One 10 MiB pack (the default pack size is 16 MiB) of 40 incompressible blobs.
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push((await repo.saveBlob('data', random(256 * 1024))).id);
    await repo.flush();
    const pack = repo.lookupBlob('data', ids[0]!)!.pack;
    expect(ids.every((id) => repo.lookupBlob('data', id)!.pack === pack)).toBe(true);
    const path = handlePath({ type: 'data', name: pack });
    expect(storage.files.get(path)!.byteLength).toBeGreaterThan(10 * 2 ** 20);

    storage.longestRead = 0;
    const clean = await repo.check({ readData: true, noLock: true });
    expect(clean.errors).toEqual([]);
    expect(clean.stats.bytesVerified).toBe(storage.files.get(path)!.byteLength);
    expect(storage.longestRead).toBeGreaterThan(0);
    expect(storage.longestRead).toBeLessThanOrEqual(PACK_READ_SIZE);

    const victim = repo.lookupBlob('data', ids[20]!)!;
    storage.files.get(path)![victim.offset + 1000]! ^= 1;
    const damaged = await repo.check({ readData: true, noLock: true });
    expect(damaged.errors.map((e) => e.file)).toEqual([path, path]);
    expect(damaged.errors[0]!.message).toContain(ids[20]!);
    expect(damaged.errors[1]!.message).toMatch(/content does not match its name/);
    expect(storage.longestRead).toBeLessThanOrEqual(PACK_READ_SIZE);
    await repo.close();
  });
});
