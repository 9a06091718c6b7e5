import { describe, expect, it } from 'vitest';
import { PACK_SLACK, SMALL_TREE_PACK } from '../../src/repository/packer.js';
import { Repository } from '../../src/repository/repository.js';
import { newRepo, quietLogger, random } from './helpers.js';

/** Tree blobs (incompressible JSON-ish payloads) of `size` bytes each. */
function treeBlob(i: number, size: number): Buffer {
  return Buffer.from(JSON.stringify({ nodes: [{ name: `f${i}`, pad: random(size).toString('base64').slice(0, size) }] }));
}

describe('pack buffers', () => {
  it('a tree pack that outgrows its small first buffer moves into a pool buffer; every tree reads back', async () => {
    const { repo, storage } = await newRepo({ packSize: 4 * 1024 * 1024 });
    const blobs = Array.from({ length: 40 }, (_, i) => treeBlob(i, 64 * 1024)); // ~2.6 MiB of trees
    const ids = [];
    for (const b of blobs) ids.push((await repo.saveBlob('tree', b)).id);
    await repo.flush();
    // One tree pack holds them all (it moved out of the 1 MiB buffer, it was not finished early).
    const packs = storage.paths('data/');
    expect(packs).toHaveLength(1);
    expect(storage.files.get(packs[0]!)!.byteLength).toBeGreaterThan(SMALL_TREE_PACK);
    await repo.close();
    const again = await Repository.open(storage, 'secret', { logger: quietLogger() });
    for (let i = 0; i < ids.length; i++) expect((await again.loadBlob('tree', ids[i]!)).equals(blobs[i]!)).toBe(true);
    await again.close();
  });

  it('a few small trees take one small buffer, not a pack-sized one', async () => {
    const { repo } = await newRepo({ packSize: 16 * 1024 * 1024 });
    await repo.saveBlob('tree', treeBlob(1, 1000));
    expect(repo.writeStats().bufferBytes).toBe(0); // the small buffer is not a pool buffer
    await repo.saveBlob('data', random(100_000));
    expect(repo.writeStats().bufferBytes).toBe(16 * 1024 * 1024 + PACK_SLACK + 64 * 1024);
    await repo.flush();
    await repo.close();
  });

  it('a data blob that does not fit the open pack finishes it first; packs stay within packSize + slack', async () => {
    const packSize = 2 * 1024 * 1024;
    const { repo, storage } = await newRepo({ packSize });
    const blobs = Array.from({ length: 12 }, (_, i) => random(700_000 + i * 1000)); // random: stored uncompressed
    const ids = [];
    for (const b of blobs) ids.push((await repo.saveBlob('data', b)).id);
    await repo.flush();
    for (const p of storage.paths('data/')) expect(storage.files.get(p)!.byteLength).toBeLessThanOrEqual(packSize + PACK_SLACK + 64 * 1024);
    for (let i = 0; i < ids.length; i++) expect((await repo.loadBlob('data', ids[i]!)).equals(blobs[i]!)).toBe(true);
    await repo.close();
  });
});
