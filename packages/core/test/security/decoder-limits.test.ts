import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MasterKeys, createKeyFile, parseKeyFile } from '../../src/crypto/keys.js';
import { validateConfig } from '../../src/repository/decode.js';
import { FLAG_COMPRESSED, FLAG_TREE } from '../../src/repository/index-table.js';
import { MAX_DATA_BLOB_SIZE, MAX_KEY_FILE_SIZE, MAX_TREE_BLOB_SIZE } from '../../src/repository/limits.js';
import { parseLockInfo, readLockFile } from '../../src/repository/lock.js';
import { decodePackHeader, encodeIndexBody, encodePackHeader, packHeaderLength, scanIndexBody, type PackEntry } from '../../src/repository/pack-format.js';
import { HostileRepo } from '../../src/testing/hostile.js';
import { newRepo } from '../repository/helpers.js';

const entry = (e: Partial<PackEntry>): PackEntry => ({ flags: 0, id: randomBytes(32), offset: 0, length: 128, rawLength: 100, ...e });
const scan = (packs: Array<{ id: string; entries: PackEntry[] }>) => scanIndexBody(encodeIndexBody(packs), () => undefined, () => undefined);

describe('pack header and index entry limits', () => {
  it('accepts the entries Kiwi writes', () => {
    const es = [entry({}), entry({ offset: 128, flags: FLAG_COMPRESSED, length: 60, rawLength: 5000 })];
    expect(decodePackHeader(encodePackHeader(es), 188)).toHaveLength(2);
    expect(scan([{ id: 'a'.repeat(64), entries: es }]).blobs).toBe(2);
  });

  it.each([
    ['unknown flag bits', entry({ flags: 4 }), /unknown flag bits/],
    ['a raw length over the data blob cap', entry({ flags: FLAG_COMPRESSED, length: 1000, rawLength: MAX_DATA_BLOB_SIZE + 1 }), /exceeds the data blob limit/],
    ['a raw length over the tree blob cap', entry({ flags: FLAG_TREE | FLAG_COMPRESSED, length: 1000, rawLength: MAX_TREE_BLOB_SIZE + 1 }), /exceeds the tree blob limit/],
    ['a stored length below the cipher overhead', entry({ length: 27, rawLength: 0 }), /shorter than the cipher overhead/],
    ['an uncompressed blob whose sizes disagree', entry({ length: 128, rawLength: 4_000_000 }), /uncompressed blob stored in 128 bytes/],
    ['a "compressed" blob not smaller than its raw length', entry({ flags: FLAG_COMPRESSED, length: 1028, rawLength: 1000 }), /not smaller than its raw length/],
    ['a gap or overlap', entry({ offset: 5 }), /offset 5, expected 0/],
  ])('refuses %s (pack header and index file alike)', (_what, e, re) => {
    expect(() => decodePackHeader(encodePackHeader([e]))).toThrow(re);
    expect(() => scan([{ id: 'b'.repeat(64), entries: [e] }])).toThrow(re);
  });

  it('refuses a header whose blobs do not fill the pack data exactly', () => {
    expect(() => decodePackHeader(encodePackHeader([entry({})]), 100)).toThrow(/past the pack data/);
    expect(() => decodePackHeader(encodePackHeader([entry({})]), 500)).toThrow(/lists 128 bytes of blobs, the pack holds 500/);
  });

  it('refuses a header length that cannot fit the pack, before reading or decrypting it', () => {
    const le = (n: number) => Buffer.from(Uint32Array.of(n).buffer);
    expect(() => packHeaderLength(10, le(4))).toThrow(/too short/);
    expect(() => packHeaderLength(1000, le(0xffffffff))).toThrow(/impossible for a 1000-byte pack/);
    expect(() => packHeaderLength(1000, le(28 + 1 + 44))).toThrow(/not 28 \+ 1 \+ n × 45/);
    expect(packHeaderLength(1000, le(28 + 1 + 90))).toBe(119);
  });

  it('refuses an index body whose counts claim more than it holds, before looping', () => {
    const body = encodeIndexBody([{ id: 'c'.repeat(64), entries: [entry({})] }]);
    const lying = Buffer.from(body);
    lying.writeUInt32LE(0xffffffff, 16 + 32); // blob count of the first pack
    expect(() => scanIndexBody(lying, () => undefined, () => undefined)).toThrow(/truncated/);
    const manyPacks = Buffer.from(body);
    manyPacks.writeUInt32LE(0xffffffff, 12);
    expect(() => scanIndexBody(manyPacks, () => undefined, () => undefined)).toThrow(/truncated/);
    const manySup = Buffer.from(body);
    manySup.writeUInt32LE(0x7fffffff, 8);
    expect(() => scanIndexBody(manySup, () => undefined, () => undefined)).toThrow(/truncated/);
  });
});

describe('key file limits', () => {
  async function keyJson(over: Record<string, unknown>): Promise<Buffer> {
    const { file } = await createKeyFile(MasterKeys.generate(), 'pw', { kdf: { N: 1024, r: 8, p: 1 } });
    return Buffer.from(JSON.stringify({ ...file, ...over }));
  }

  it('refuses scrypt parameters that would take gigabytes or minutes', async () => {
    await expect(keyJson({ N: 2 ** 20, r: 8 })).resolves.toBeDefined();
    expect(() => parseKeyFile(Buffer.from('{}'), 'k')).toThrow(/version/);
    expect(() => parseKeyFile(Buffer.alloc(0), 'k')).toThrow(/not valid JSON/);
    const mem = await keyJson({ N: 2 ** 20, r: 8 }); // 1 GiB
    expect(() => parseKeyFile(mem, 'keys/x')).toThrow(/keys\/x: scrypt N = 1048576, r = 8 need 1024 MiB of memory, more than the limit of 256 MiB/);
    const work = await keyJson({ N: 2 ** 14, r: 8, p: 1000 });
    expect(() => parseKeyFile(work, 'keys/x')).toThrow(/more work/);
    const huge = await keyJson({ N: 2 ** 40 });
    expect(() => parseKeyFile(huge, 'keys/x')).toThrow(/scrypt N = 2\^40 is above the limit of 2\^30/);
    expect(parseKeyFile.bind(null, await keyJson({ r: 0.5 }), 'keys/x')).toThrow(/positive integers/);
  });

  it('refuses a key file too large, a bad salt, data of the wrong length, long strings', async () => {
    expect(() => parseKeyFile(Buffer.alloc(MAX_KEY_FILE_SIZE + 1, 32), 'keys/x')).toThrow(/more than a key file may have/);
    expect(parseKeyFile.bind(null, await keyJson({ salt: 'AAAA' }), 'keys/x')).toThrow(/salt/);
    expect(parseKeyFile.bind(null, await keyJson({ salt: '!!!!' }), 'keys/x')).toThrow(/salt/);
    expect(parseKeyFile.bind(null, await keyJson({ data: Buffer.alloc(10).toString('base64') }), 'keys/x')).toThrow(/data must be 92 bytes/);
    expect(parseKeyFile.bind(null, await keyJson({ hostname: 'h'.repeat(300) }), 'keys/x')).toThrow(/hostname/);
    expect(parseKeyFile(await keyJson({}), 'keys/x').kdf).toBe('scrypt');
  });

  it('a hostile key file is skipped before scrypt runs (it asked for 128 GiB)', async () => {
    const { storage } = await newRepo();
    const h = await HostileRepo.open(storage, 'secret');
    const { file } = await createKeyFile(MasterKeys.generate(), 'other', { kdf: { N: 1024, r: 8, p: 1 } });
    const hostileKey = await h.writeRawKeyFile({ ...file, N: 2 ** 24, r: 64, p: 64 });
    for (const f of [...storage.files.keys()]) if (f.startsWith('keys/') && f !== `keys/${hostileKey}`) storage.files.delete(f);
    const { Repository } = await import('../../src/repository/repository.js');
    const lines: string[] = [];
    const opening = Repository.open(storage, 'secret', { logger: { info: () => undefined, warn: (m) => lines.push(m) } });
    await expect(opening).rejects.toThrow(/its key file is not readable/);
    expect(lines.join('\n')).toMatch(/keys\/[0-9a-f]{64}: scrypt N = 16777216, r = 64 need 131072 MiB of memory, more than the limit of 256 MiB/);
  });
});

describe('lock file limits', () => {
  it('refuses an oversized lock file before decrypting it, and malformed fields', async () => {
    const { repo, storage } = await newRepo();
    const h = await HostileRepo.open(storage, 'secret');
    const big = await h.writeRawLockFile(JSON.stringify({ time: new Date().toISOString(), hostname: 'h', pid: 1, pad: 'x'.repeat(70_000) }));
    await expect(readLockFile(repo.lockContext(), big)).rejects.toThrow(/more than a lock file may have/);
    const ok = { time: new Date().toISOString(), hostname: 'h', pid: 12, username: 'u', exclusive: false };
    const j = (o: unknown) => Buffer.from(JSON.stringify(o));
    expect(parseLockInfo(j(ok), 'locks/a')).toEqual(ok);
    for (const bad of [{ ...ok, pid: -7 }, { ...ok, pid: 2 ** 32 }, { ...ok, pid: '12' }, { ...ok, time: 'yesterday' }, { ...ok, hostname: 7 }, { ...ok, exclusive: 'yes' }, null, [], 'x']) {
      expect(() => parseLockInfo(j(bad), 'locks/a')).toThrow(/locks\/a: malformed lock/);
    }
    // The lock machinery ignores such files with a warning and takes its lock.
    const lock = await repo.lock('exclusive');
    await lock.release();
    await repo.close();
  });
});

describe('config limits', () => {
  const good = () => ({
    version: 1,
    id: 'ab'.repeat(32),
    chunker: { minSize: 512 * 1024, avgSize: 1 << 20, maxSize: 8 << 20, seed: randomBytes(32).toString('base64') },
    compression: { algorithm: 'zstd', level: 3 },
    packSize: 16 << 20,
  });
  it('accepts Kiwi configs and refuses insane parameters', () => {
    expect(validateConfig(good()).packSize).toBe(16 << 20);
    const bad: Array<[string, (c: ReturnType<typeof good>) => void]> = [
      ['id', (c) => (c.id = 'x')],
      ['max chunk', (c) => (c.chunker.maxSize = 2 ** 40)],
      ['min > avg', (c) => (c.chunker.minSize = 4 << 20)],
      ['avg not a power of two', (c) => (c.chunker.avgSize = 1_000_000)],
      ['tiny min', (c) => (c.chunker.minSize = 1)],
      ['seed', (c) => (c.chunker.seed = 'AAAA')],
      ['level', (c) => (c.compression.level = 99)],
      ['packSize', (c) => (c.packSize = 2 ** 40)],
      ['packSize fraction', (c) => (c.packSize = 1e6 + 0.5)],
    ];
    for (const [what, mutate] of bad) {
      const c = good();
      mutate(c);
      expect(() => validateConfig(c), what).toThrow(/config: /);
    }
    expect(() => validateConfig([])).toThrow(/not a JSON object/);
  });
});
