/**
 * Key files are hostile input: whoever can write the storage can add one, without knowing any
 * password. Opening must skip such a file (as it skips any malformed one), within the memory and
 * time limits of docs/security.md, and messages about it must not let its contents forge output.
 */
import { describe, expect, it } from 'vitest';
import { MasterKeys, createKeyFile, parseKeyFile, sha256Hex } from '../../src/crypto/keys.js';
import { Repository } from '../../src/repository/repository.js';
import { HostileRepo } from '../../src/testing/hostile.js';
import { FAST_KDF, newRepo, quietLogger } from '../repository/helpers.js';

async function keyJson(over: Record<string, unknown>): Promise<Buffer> {
  const { file } = await createKeyFile(MasterKeys.generate(), 'pw', { kdf: FAST_KDF });
  return Buffer.from(JSON.stringify({ ...file, ...over }));
}

describe('hostile key files', () => {
  it("refuses scrypt parameters whose p blocks need more memory than the limit (N = 2, r = 1, p = 2^23 took 2 GiB and 18 s)", async () => {
    // N·r·p = 2^24 is within the work limit and 128·N·r = 256 bytes within the memory limit, but
    // scrypt also holds p blocks of 128·r bytes (and their PBKDF2 output): 1 GiB each here.
    const blocks = await keyJson({ N: 2, r: 1, p: 2 ** 23 });
    expect(() => parseKeyFile(blocks, 'keys/x')).toThrow(/keys\/x: scrypt .*p = 8388608.* memory/);
    const blocks2 = await keyJson({ N: 2 ** 4, r: 8, p: 2 ** 16 });
    expect(() => parseKeyFile(blocks2, 'keys/x')).toThrow(/memory/);
    // What Kiwi writes, and the largest memory the limit allows, still open.
    expect(parseKeyFile(await keyJson({ N: 2 ** 15, r: 8, p: 1 }), 'keys/x').N).toBe(2 ** 15);
    expect(parseKeyFile(await keyJson({ N: 2 ** 18, r: 8, p: 1 }), 'keys/x').N).toBe(2 ** 18);
    expect(parseKeyFile(await keyJson({ N: 2 ** 14, r: 8, p: 16 }), 'keys/x').p).toBe(16);
  });

  it('skips a key file whose parameters scrypt itself refuses (N = 2, r = 2^18), instead of failing to open', async () => {
    // 128·N·r = 64 MiB passes the memory check, but scrypt's own need, 128·r·(N + 2 + p), is over
    // the maxmem the key derivation gives it: scrypt throws, and that error stopped the opening.
    const expectedRefusal = /keys\/x: scrypt .*r = 262144.* memory/;
    const params = { N: 2, r: 2 ** 18, p: 1 };
    const hostileParams = await keyJson(params);
    expect(() => parseKeyFile(hostileParams, 'keys/x')).toThrow(expectedRefusal);

    // The repository's key file is listed after the hostile one (key files are tried in name order).
    let made = await newRepo();
    while (made.storage.paths('keys/')[0]![5]! < '8') {
      await made.repo.close();
      made = await newRepo();
    }
    const { repo, storage } = made;
    await repo.close();
    const { file } = await createKeyFile(MasterKeys.generate(), 'other', { kdf: FAST_KDF });
    let hostile: Buffer;
    for (let i = 0; ; i++) {
      hostile = Buffer.from(JSON.stringify({ ...file, ...params, hostname: `h${i}` }));
      if (sha256Hex(hostile) < '8') break;
    }
    const name = await (await HostileRepo.open(storage, 'secret')).writeRawKeyFile(hostile);
    expect(storage.paths('keys/')[0]).toBe(`keys/${name}`);

    const logger = quietLogger();
    const reopened = await Repository.open(storage, 'secret', { logger });
    expect(logger.lines.join('\n')).toMatch(new RegExp(`skipping unreadable key file: keys/${name}: scrypt .*memory`));
    await reopened.close();
  });

  it('quotes the values of a malformed key file escaped and short (no forged lines in warnings)', async () => {
    const forged = `2\nkiwi: added key 0123abcd${'x'.repeat(5000)}`;
    for (const over of [{ version: forged }, { kdf: forged }]) {
      let message = '';
      try {
        parseKeyFile(await keyJson(over), 'keys/x');
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/^keys\/x: unsupported /);
      expect(message).not.toContain('\n');
      expect(message.length).toBeLessThan(200);
    }
  });
});
