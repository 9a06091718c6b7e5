/**
 * `kiwi key add | remove | passwd` on the engine's side (Repository.addKey/removeKey/listKeys, in
 * repository/open.ts).
 */
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/crypto/keys.js';
import { Repository } from '../../src/repository/repository.js';
import type { Handle } from '../../src/storage/types.js';
import { FAST_KDF, MapStorage, newRepo, quietLogger } from '../repository/helpers.js';

/** A storage that damages the key files it saves once told to (a bad disk, a broken gateway). */
class KeyDamagingStorage extends MapStorage {
  damageKeys = false;
  override async save(handle: Handle, data: Uint8Array): Promise<void> {
    if (!this.damageKeys || handle.type !== 'key') return super.save(handle, data);
    const bad = Buffer.from(data);
    bad[bad.length >> 1]! ^= 0x01;
    return super.save(handle, bad);
  }
}

describe('key management', () => {
  it('removeKey refuses an id prefix that matches two keys, and the only key', async () => {
    const { repo, storage } = await newRepo();
    // At most 17 keys until two ids share their first hex digit.
    const byFirst = new Map<string, string>();
    let pair: [string, string] | undefined;
    for (const k of await repo.listKeys()) byFirst.set(k.id[0]!, k.id);
    while (!pair) {
      const id = await repo.addKey(`pw${byFirst.size}`, { kdf: FAST_KDF });
      const other = byFirst.get(id[0]!);
      if (other) pair = [other, id];
      else byFirst.set(id[0]!, id);
    }
    const before = storage.paths('keys/');
    await expect(repo.removeKey(pair[0][0]!)).rejects.toThrow(/ambiguous/);
    expect(storage.paths('keys/')).toEqual(before);
    await repo.close();

    const single = await newRepo();
    const [only] = await single.repo.listKeys();
    await expect(single.repo.removeKey(only!.id.slice(0, 4))).rejects.toThrow(/only key/);
    await single.repo.close();
  });

  // addKey reads back the key file it stored and opens it (as restic's `key passwd` opens the new key
  // before it removes the old one: "a broken key can render the whole repository inaccessible").
  it('key passwd over a storage that damages the new key file leaves a key that opens the repository', async () => {
    const storage = new KeyDamagingStorage();
    const { repo } = await newRepo({}, storage);
    const current = (await repo.listKeys()).find((k) => k.current)!.id;
    storage.damageKeys = true;
    // What `kiwi key passwd` does: add the new key, then remove the one in use.
    let added: string | undefined;
    await expect(
      repo.addKey('new', { kdf: FAST_KDF }).then((id) => {
        added = id;
      }),
    ).rejects.toThrow(/the new key file keys\/[0-9a-f]{64} did not verify \(its stored bytes differ from those written\); it was removed/);
    // Refused, and the damaged file is gone: only the old key is left.
    expect((await repo.listKeys()).map((k) => k.id)).toEqual([current]);
    if (added) await repo.removeKey(current);
    await repo.close();
    const opened = await Repository.open(storage, added ? 'new' : 'secret', { logger: quietLogger() });
    await opened.close();
  });

  // One key file that does not parse made listKeys throw, so `kiwi key list`, `key remove` (which
  // could remove the damaged file) and `key passwd` all failed, while opening skips it.
  it('listKeys lists the readable keys when another key file is damaged, and the damaged one as such (it can be removed)', async () => {
    const { repo, storage } = await newRepo();
    const current = (await repo.listKeys()).find((k) => k.current)!.id;
    const garbage = Buffer.from('{"version":1,"kdf":"scrypt"');
    const bad = sha256Hex(garbage);
    storage.files.set(`keys/${bad}`, garbage);
    const keys = await repo.listKeys();
    expect(keys.find((k) => k.id === current)).toMatchObject({ current: true });
    expect(keys.find((k) => k.id === bad)).toMatchObject({ current: false, damaged: expect.stringMatching(/keys\/[0-9a-f]{64}/) });
    await repo.removeKey(bad.slice(0, 10));
    expect((await repo.listKeys()).map((k) => k.id)).toEqual([current]);
    await repo.close();
  });
});
