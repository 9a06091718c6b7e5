/**
 * saveBlob throughput (MB/s) for ~1 MiB chunks. A measurement, not a check:
 * runs only with KIWI_BENCH=1, e.g.
 *   KIWI_BENCH=1 npx vitest run --project core test/repository/throughput
 */
import { describe, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { FileInfo, Handle, Storage } from '../../src/storage/types.js';
import { Repository } from '../../src/repository/repository.js';
import { FAST_KDF, quietLogger } from './helpers.js';

/** Storage that discards packs (measures the CPU path only). */
class NullStorage implements Storage {
  readonly location = 'null:';
  bytes = 0;
  async create() {}
  async save(_h: Handle, data: Uint8Array) {
    this.bytes += data.byteLength;
  }
  async load(): Promise<Buffer> {
    throw Object.assign(new Error('not found'), { code: 'ENOENT' });
  }
  async stat(): Promise<FileInfo> {
    throw Object.assign(new Error('not found'), { code: 'ENOENT' });
  }
  async *list(): AsyncIterable<FileInfo> {}
  async remove() {}
  isNotFound(err: unknown) {
    return (err as { code?: string }).code === 'ENOENT';
  }
  async close() {}
}

function chunks(total: number, kind: 'random' | 'text'): Buffer[] {
  const out: Buffer[] = [];
  const base = kind === 'random' ? randomBytes(1 << 20) : Buffer.from(Array.from({ length: 40000 }, (_, i) => `${i} lorem ipsum ${(i * 7919) % 1000}\n`).join('')).subarray(0, 1 << 20);
  for (let i = 0; i < total; i++) {
    const b = Buffer.from(base);
    b.writeUInt32LE(i, 0); // distinct ids
    if (kind === 'random') randomBytes(4096).copy(b, 8);
    out.push(b);
  }
  return out;
}

describe.skipIf(!process.env.KIWI_BENCH)('saveBlob throughput', () => {
  for (const kind of ['random', 'text'] as const) {
    for (const inFlight of [1, 2]) {
      it(`${kind} 1 MiB chunks, ${inFlight} in flight`, async () => {
        const storage = new NullStorage();
        const repo = await Repository.init(storage, 'x', { kdf: FAST_KDF, logger: quietLogger() });
        const data = chunks(256, kind);
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        let next = 0;
        await Promise.all(
          Array.from({ length: inFlight }, async () => {
            while (next < data.length) await repo.saveBlob('data', data[next++]!);
          }),
        );
        await repo.flush();
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(c0);
        const mb = (data.length * (1 << 20)) / 1e6;
        console.log(
          `${kind}, ${inFlight} in flight: ${(mb / (ms / 1000)).toFixed(0)} MB/s wall, main-thread+pool cpu ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms for ${mb.toFixed(0)} MB, stored ${(storage.bytes / 1e6).toFixed(0)} MB, rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`,
        );
        await repo.close();
      });
    }
  }
});
