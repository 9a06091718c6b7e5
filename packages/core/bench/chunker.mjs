// Chunker throughput. Run after a build: `cd packages/core && npx tsup && node bench/chunker.mjs [MiB]`
// (or set KIWI_CORE to another module path exporting the same API).
// Prints MB/s of Chunker.findBoundary on in-memory random data, and of chunkFile
// reading a file from the page cache (both single-threaded, default 512K/1M/8M sizes).
import { randomFillSync, randomBytes, createHmac } from 'node:crypto';
import { open, writeFile, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const mod = await import(process.env.KIWI_CORE ?? new URL('../dist/index.js', import.meta.url).href);
const { Chunker, chunkFile, DEFAULT_CHUNKER_PARAMS, BufferPool } = mod;

const mib = Number(process.argv[2] ?? 256);
const data = randomFillSync(Buffer.allocUnsafeSlow(mib << 20));
const chunker = new Chunker({ ...DEFAULT_CHUNKER_PARAMS, seed: randomBytes(32) });
const mbps = (bytes, ns) => (bytes / 1e6 / (Number(ns) / 1e9)).toFixed(0);
// CPU time (user+sys of all threads) in ns: robust when other processes load the machine.
const cpuNs = (since) => {
  const u = process.cpuUsage(since);
  return BigInt(u.user + u.system) * 1000n;
};

let best = 0n;
let bestCpu = 0n;
let chunks = 0;
for (let round = 0; round < 5; round++) {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let s = 0;
  chunks = 0;
  while (s < data.length) {
    let cut = chunker.findBoundary(data, s, data.length);
    if (cut < 0) cut = data.length;
    s = cut;
    chunks++;
  }
  const dt = process.hrtime.bigint() - t0;
  const dc = cpuNs(c0);
  if (best === 0n || dt < best) best = dt;
  if (bestCpu === 0n || dc < bestCpu) bestCpu = dc;
}
console.log(
  `findBoundary: ${mbps(data.length, best)} MB/s wall, ${mbps(data.length, bestCpu)} MB/s per CPU-second, over ${mib} MiB (best of 5), ${chunks} chunks, mean ${(data.length / chunks / 1048576).toFixed(2)} MiB`,
);

const dir = await mkdtemp(join(tmpdir(), 'kiwi-bench-'));
try {
  const file = join(dir, 'data');
  await writeFile(file, data);
  const pool = new BufferPool();
  best = 0n;
  bestCpu = 0n;
  for (let round = 0; round < 5; round++) {
    const fh = await open(file, 'r');
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    let bytes = 0;
    for await (const c of chunkFile(fh, chunker, pool)) bytes += c.length;
    const dt = process.hrtime.bigint() - t0;
    const dc = cpuNs(c0);
    await fh.close();
    if (bestCpu === 0n || dc < bestCpu) bestCpu = dc;
    if (bytes !== data.length) throw new Error(`read ${bytes} of ${data.length} bytes`);
    if (best === 0n || dt < best) best = dt;
  }
  console.log(`chunkFile (page cache): ${mbps(data.length, best)} MB/s wall, ${mbps(data.length, bestCpu)} MB/s per CPU-second (best of 5)`);
  // With a consumer doing real work per chunk (HMAC-SHA-256, as the blob id): reads overlap it.
  const key = randomBytes(32);
  let bestHash = Infinity;
  for (let round = 0; round < 3; round++) {
    const fh = await open(file, 'r');
    const t0 = performance.now();
    for await (const c of chunkFile(fh, chunker, pool)) createHmac('sha256', key).update(c).digest();
    bestHash = Math.min(bestHash, performance.now() - t0);
    await fh.close();
  }
  let bestHashOnly = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    createHmac('sha256', key).update(data).digest();
    bestHashOnly = Math.min(bestHashOnly, performance.now() - t0);
  }
  console.log(
    `chunkFile + HMAC-SHA-256 per chunk: ${((data.length / 1e6) / (bestHash / 1e3)).toFixed(0)} MB/s wall (HMAC alone: ${((data.length / 1e6) / (bestHashOnly / 1e3)).toFixed(0)} MB/s)`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
