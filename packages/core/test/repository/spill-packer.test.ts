import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OVERHEAD } from '../../src/crypto/aead.js';
import { MasterKeys } from '../../src/crypto/keys.js';
import { Packer, type PackWriter } from '../../src/repository/packer.js';
import { readPackHeader } from '../../src/repository/pack-reader.js';
import type { PackEntry } from '../../src/repository/pack-format.js';
import { SpillPacker } from '../../src/repository/spill-packer.js';
import type { Handle, SaveSource } from '../../src/storage/types.js';
import { MapStorage, newRepo, random } from './helpers.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempParent(): string {
  const d = mkdtempSync(join(tmpdir(), 'kiwi-spill-test-'));
  dirs.push(d);
  return d;
}

/** A MapStorage with saveFrom (reading the source as it comes), counting how packs were saved. */
class StreamingStorage extends MapStorage {
  streamed = 0;
  async saveFrom(handle: Handle, source: SaveSource): Promise<void> {
    const parts: Buffer[] = [];
    for await (const c of source.open()) parts.push(Buffer.from(c));
    const all = Buffer.concat(parts);
    if (all.byteLength !== source.size) throw new Error(`source yielded ${all.byteLength} of ${source.size} bytes`);
    this.streamed++;
    await this.save(handle, all);
  }
}

interface Step {
  type: 'data' | 'tree';
  sealed: boolean;
  bytes: Buffer;
}

/** Blobs of many sizes: tiny ones (a header larger than the staging buffer), ones larger than it, sealed and not. */
function steps(): Step[] {
  const out: Step[] = [];
  for (let i = 0; i < 400; i++) out.push({ type: i % 7 === 0 ? 'tree' : 'data', sealed: i % 3 === 0, bytes: random(i % 50 === 0 ? 1_500_000 + i : 40 + ((i * 7919) % 90_000)) });
  for (let i = 0; i < 30_000; i++) out.push({ type: 'data', sealed: true, bytes: random(OVERHEAD + 1 + (i % 5)) });
  return out;
}

/** Run `steps` through a packer; the stored packs' entries (by pack) and each blob's bytes as stored. */
async function run(make: (storage: MapStorage, onUploaded: (id: string, entries: PackEntry[], size: number) => void) => PackWriter, storage: MapStorage, keys: MasterKeys, list: Step[]) {
  const uploaded: Array<{ id: string; entries: PackEntry[]; size: number }> = [];
  const packer = make(storage, (id, entries, size) => uploaded.push({ id, entries, size }));
  for (const [i, s] of list.entries()) {
    const id = createHash('sha256').update(`blob ${i}`).digest();
    if (s.sealed) await packer.addSealed(s.type, id, s.bytes, s.bytes.byteLength - OVERHEAD, false);
    else await packer.add(s.type, id, s.bytes, s.bytes.byteLength, false);
  }
  await packer.flush();
  await packer.close();
  const packs = [];
  for (const u of uploaded.sort((a, b) => Buffer.compare(a.entries[0]!.id, b.entries[0]!.id))) {
    const file = storage.files.get(`data/${u.id.slice(0, 2)}/${u.id}`)!;
    // The name is the SHA-256 of the stored bytes; the header read back is the one reported.
    expect(createHash('sha256').update(file).digest('hex')).toBe(u.id);
    expect(file.byteLength).toBe(u.size);
    const header = await readPackHeader(storage, keys, u.id, file.byteLength);
    expect(header.map((e) => ({ ...e, id: Buffer.from(e.id).toString('hex') }))).toEqual(u.entries.map((e) => ({ ...e, id: Buffer.from(e.id).toString('hex') })));
    // Sealed blobs are stored as given; the others decrypt to what was given.
    const blobs = header.map((e) => {
      const stored = file.subarray(e.offset, e.offset + e.length);
      try {
        return keys.decrypt(stored);
      } catch {
        return stored; // a sealed blob (random bytes here)
      }
    });
    packs.push({ entries: header.map((e) => [e.flags, e.offset, e.length, e.rawLength, Buffer.from(e.id).toString('hex')]), blobs });
  }
  return packs;
}

describe('SpillPacker (packs built in temporary files)', () => {
  it('makes the same packs as the in-memory packer: boundaries, headers and blob bytes', async () => {
    const keys = MasterKeys.generate();
    const list = steps();
    const packSize = 2 * 1024 * 1024;
    const parent = tempParent();
    const inMemory = await run((storage, onUploaded) => new Packer({ storage, encKey: keys.encKey, packSize, onUploaded }), new MapStorage(), keys, list);
    const streaming = new StreamingStorage();
    const spilled = await run((storage, onUploaded) => new SpillPacker({ storage, encKey: keys.encKey, packSize, dir: parent, onUploaded }), streaming, keys, list);
    expect(spilled.length).toBeGreaterThan(3);
    expect(spilled.map((p) => p.entries)).toEqual(inMemory.map((p) => p.entries));
    for (let p = 0; p < spilled.length; p++) {
      for (let b = 0; b < spilled[p]!.blobs.length; b++) expect(spilled[p]!.blobs[b]!.equals(inMemory[p]!.blobs[b]!)).toBe(true);
    }
    // Streamed through saveFrom; the temporary directory is gone after close.
    expect(streaming.streamed).toBe(spilled.length);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('a storage without saveFrom gets each pack read back into memory', async () => {
    const keys = MasterKeys.generate();
    const storage = new MapStorage();
    const parent = tempParent();
    const packer = new SpillPacker({ storage, encKey: keys.encKey, packSize: 256 * 1024, dir: parent, onUploaded: () => undefined });
    for (let i = 0; i < 40; i++) await packer.add('data', createHash('sha256').update(`${i}`).digest(), random(30_000), 30_000, false);
    await packer.flush();
    expect(storage.paths('data/').length).toBeGreaterThan(3);
    await packer.close();
    expect(readdirSync(parent)).toEqual([]);
  });

  it('a failed upload fails flush, leaves no temporary file, and the next packer works', async () => {
    const keys = MasterKeys.generate();
    const storage = new MapStorage();
    let fail = true;
    storage.beforeSave = () => {
      if (fail) throw new Error('the store is down (injected)');
    };
    const parent = tempParent();
    const packer = new SpillPacker({ storage, encKey: keys.encKey, packSize: 64 * 1024, dir: parent, onUploaded: () => undefined });
    await expect(
      (async () => {
        for (let i = 0; i < 20; i++) await packer.add('data', randomBytes(32), random(40_000), 40_000, false);
        await packer.flush();
      })(),
    ).rejects.toThrow(/uploading pack data\/.* failed: the store is down/);
    await packer.close();
    expect(readdirSync(parent)).toEqual([]);
    fail = false;
    const again = new SpillPacker({ storage, encKey: keys.encKey, packSize: 64 * 1024, dir: parent, onUploaded: () => undefined });
    await again.add('data', randomBytes(32), random(1000), 1000, false);
    await again.flush();
    await again.close();
    expect(storage.paths('data/')).toHaveLength(1);
  });

  it('removes the temporary directories that killed processes left behind, never a running one\'s', async () => {
    const parent = tempParent();
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // exited by now
    mkdirSync(join(parent, `kiwi-packs-${dead}-AbC123`));
    writeFileSync(join(parent, `kiwi-packs-${dead}-AbC123`, 'pack-1'), 'left by a killed prune');
    mkdirSync(join(parent, `kiwi-packs-${process.pid}-XyZ789`)); // this process: running
    mkdirSync(join(parent, 'kiwi-packs-not-ours')); // another name: left alone
    const keys = MasterKeys.generate();
    const packer = new SpillPacker({ storage: new MapStorage(), encKey: keys.encKey, packSize: 64 * 1024, dir: parent, onUploaded: () => undefined });
    await packer.add('data', randomBytes(32), random(100), 100, false);
    const names = readdirSync(parent);
    expect(names).not.toContain(`kiwi-packs-${dead}-AbC123`);
    expect(names).toContain(`kiwi-packs-${process.pid}-XyZ789`);
    expect(names).toContain('kiwi-packs-not-ours');
    expect(names.filter((n) => n.startsWith(`kiwi-packs-${process.pid}-`))).toHaveLength(2); // its own, and the one made above
    await packer.flush();
    await packer.close();
  });

  it('a temporary directory that cannot be made fails with a message naming it and TMPDIR', async () => {
    const keys = MasterKeys.generate();
    // Under a regular file: no directory can be made there, not even by root.
    const file = join(tempParent(), 'a-file');
    writeFileSync(file, 'x');
    const parent = join(file, 'tmp');
    const packer = new SpillPacker({ storage: new MapStorage(), encKey: keys.encKey, packSize: 64 * 1024, dir: parent, onUploaded: () => undefined });
    await expect(packer.add('data', randomBytes(32), random(100), 100, false)).rejects.toThrow(new RegExp(`temporary pack files in ${parent}.*TMPDIR`));
    await expect(packer.flush()).rejects.toThrow(/TMPDIR/);
    await packer.close();
  });

  it('a repository opened with spillPacks stores and reads back its blobs, holding no pack-sized buffer', async () => {
    const parent = tempParent();
    const { repo } = await newRepo({ packSize: 1024 * 1024, spillPacks: parent });
    const blobs = Array.from({ length: 30 }, (_, i) => random(100_000 + i));
    const ids = [];
    for (const b of blobs) ids.push((await repo.saveBlob('data', b)).id);
    expect(repo.writeStats().bufferBytes).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(readdirSync(parent)).toHaveLength(1); // its kiwi-packs-* directory
    await repo.flush();
    for (let i = 0; i < ids.length; i++) expect((await repo.loadBlob('data', ids[i]!)).equals(blobs[i]!)).toBe(true);
    await repo.close();
    expect(existsSync(parent) && readdirSync(parent)).toEqual([]);
  });
});
