/**
 * A repository whose config file is gone: opening it says so (not "no repository"), and init
 * refuses to make a new repository over its files, which would hide the old snapshots behind a
 * second key file and another config.
 */
import { describe, expect, it } from 'vitest';
import { Repository, RepositoryConfigMissingError, RepositoryNotFoundError, runBackup } from '../../src/index.js';
import { FAST_KDF, MapStorage, quietLogger } from './helpers.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeDir, tempDir } from '../backup/helpers/fs-tree.js';

describe('a repository without its config file', () => {
  it('open names the missing config; init refuses (nothing written); with the config back, every snapshot opens', async () => {
    const storage = new MapStorage();
    const repo = await Repository.init(storage, 'pw', { kdf: FAST_KDF, logger: quietLogger() });
    const src = await tempDir();
    try {
      await mkdir(join(src, 'd'));
      await writeFile(join(src, 'd', 'f'), 'precious');
      const b = await runBackup({ repository: repo, sources: [src], parent: null });
      expect(b.status).toBe('success');
      await repo.close();
      const config = await storage.load({ type: 'config', name: 'config' });
      await storage.remove({ type: 'config', name: 'config' });
      const keysBefore = [];
      for await (const k of storage.list('key')) keysBefore.push(k.name);

      const opened = await Repository.open(storage, 'pw', { logger: quietLogger() }).catch((e: unknown) => e);
      expect(opened).toBeInstanceOf(RepositoryConfigMissingError);
      expect((opened as Error).message).toMatch(/no config file, but holds a repository's files \(keys\/, snapshots\/, index\/, data\/\)/);
      expect((opened as Error).message).toMatch(/Do not run `kiwi init`/);

      const inited = await Repository.init(storage, 'pw', { kdf: FAST_KDF, logger: quietLogger() }).catch((e: unknown) => e);
      expect(inited).toBeInstanceOf(RepositoryConfigMissingError);
      const keysAfter = [];
      for await (const k of storage.list('key')) keysAfter.push(k.name);
      expect(keysAfter).toEqual(keysBefore);
      await expect(storage.stat({ type: 'config', name: 'config' })).rejects.toThrow();

      await storage.save({ type: 'config', name: 'config' }, config);
      const back = await Repository.open(storage, 'pw', { logger: quietLogger() });
      expect((await back.listSnapshots()).map((s) => s.id)).toEqual([b.snapshotId]);
      await back.close();
    } finally {
      await removeDir(src);
    }
  });

  it('an empty location is still "no repository", and init there works', async () => {
    const storage = new MapStorage();
    await expect(Repository.open(storage, 'pw', { logger: quietLogger() })).rejects.toBeInstanceOf(RepositoryNotFoundError);
    const repo = await Repository.init(storage, 'pw', { kdf: FAST_KDF, logger: quietLogger() });
    await repo.close();
  });
});

describe('a damaged key file', () => {
  it('is named as damaged, not taken for a wrong password; another key still opens the repository', async () => {
    const { WrongPasswordError, IntegrityError } = await import('../../src/index.js');
    const storage = new MapStorage();
    const repo = await Repository.init(storage, 'pw', { kdf: FAST_KDF, logger: quietLogger() });
    const first = (await repo.listKeys()).map((k) => k.id);
    await repo.addKey('other', { kdf: FAST_KDF });
    await repo.close();
    const name = first[0]!;
    const bytes = await storage.load({ type: 'key', name });
    bytes[bytes.length - 10]! ^= 1;
    await storage.save({ type: 'key', name }, bytes);
    // Its password: the only key it had is damaged, the other key is intact.
    const err = await Repository.open(storage, 'pw', { logger: quietLogger() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WrongPasswordError);
    expect((err as Error).message).toContain(`keys/${name} is damaged`);
    const other = await Repository.open(storage, 'other', { logger: quietLogger() });
    await other.close();
    // With only the damaged key left, it is not a password problem at all.
    for await (const k of storage.list('key')) if (k.name !== name) await storage.remove({ type: 'key', name: k.name });
    const only = await Repository.open(storage, 'pw', { logger: quietLogger() }).catch((e: unknown) => e);
    expect(only).toBeInstanceOf(IntegrityError);
    expect((only as Error).message).toMatch(/damaged: its content does not match its name/);
  });
});
