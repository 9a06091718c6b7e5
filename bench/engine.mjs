#!/usr/bin/env node
// `pnpm bench:engine`: the repository engine's own throughput, without disk or network.
// saveBlob (encrypt, compress, pack) of 1 MiB chunks into the memory storage, and loadBlobs
// (read, decrypt, verify, decompress) of them back. A measurement, not a
// check: it prints MB/s and CPU, it asserts nothing. Run after `pnpm run build`.
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { Repository } = await import(join(root, 'packages/core/dist/index.js'));
const { createMemoryStorage } = await import(join(root, 'packages/storage-memory/dist/index.js'));
const FAST_KDF = { N: 1024, r: 8, p: 1 };
const quiet = { info() {}, warn() {} };

function chunks(total, kind) {
  const out = [];
  const base =
    kind === 'random'
      ? randomBytes(1 << 20)
      : Buffer.from(Array.from({ length: 40000 }, (_, i) => `${i} lorem ipsum ${(i * 7919) % 1000}\n`).join('')).subarray(0, 1 << 20);
  for (let i = 0; i < total; i++) {
    const b = Buffer.from(base);
    b.writeUInt32LE(i, 0); // distinct ids
    if (kind === 'random') randomBytes(4096).copy(b, 8);
    out.push(b);
  }
  return out;
}

const cpuMs = (c) => ((c.user + c.system) / 1000).toFixed(0);
const rows = [];
for (const kind of ['random', 'text']) {
  const data = chunks(256, kind);
  const mb = (data.length * (1 << 20)) / 1e6;
  for (const inFlight of [1, 2]) {
    const storage = createMemoryStorage('bench');
    const repo = await Repository.init(storage, 'x', { kdf: FAST_KDF, logger: quiet });
    const ids = [];
    let next = 0;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < data.length) ids.push((await repo.saveBlob('data', data[next++])).id);
      }),
    );
    await repo.flush();
    const ms = performance.now() - t0;
    rows.push(`| saveBlob | ${kind} | ${inFlight} in flight | ${(mb / (ms / 1000)).toFixed(0)} | ${cpuMs(process.cpuUsage(c0))} |`);
    if (inFlight === 2) {
      const t1 = performance.now();
      const c1 = process.cpuUsage();
      let n = 0;
      await repo.loadBlobs('data', ids, (id, buf) => {
        if (!buf) throw new Error(`blob ${id} not loaded`);
        n += buf.length;
      }, { transient: true });
      const ms1 = performance.now() - t1;
      rows.push(`| loadBlobs | ${kind} | 4 reads in flight | ${(n / 1e6 / (ms1 / 1000)).toFixed(0)} | ${cpuMs(process.cpuUsage(c1))} |`);
    }
    await repo.close();
  }
}
console.log(`Engine throughput, ${256} × 1 MiB chunks (${process.version}):\n`);
console.log('| operation | data | mode | MB/s (wall) | CPU ms (all threads) |');
console.log('| --- | --- | --- | ---: | ---: |');
for (const r of rows) console.log(r);
