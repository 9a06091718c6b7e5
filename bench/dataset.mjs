// Deterministic benchmark data set (~1 GiB): tens of thousands of small files, some large files,
// duplicate files, and a near-copy of a directory. Same bytes on every machine and every run.
// `--small` builds a reduced set of the same shape (for trying out the benchmark, not for results).
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lutimes, mkdir, writeFile, readFile, rm, open, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';

const VERSION = 'kiwi-bench-v2';

/**
 * The set's shape: `a` × `b` directories of `k` small files, four large files of `largeMiB` MiB.
 * The full shape is the one every published result used; its bytes must not change.
 */
const SHAPES = {
  full: { a: 24, b: 20, k: 50, largeMiB: 128 },
  small: { a: 3, b: 4, k: 50, largeMiB: 8 },
};
const shapeOf = (small) => (small ? SHAPES.small : SHAPES.full);
const markerText = (small) => (small ? `${VERSION}:small` : VERSION);

/** A deterministic byte stream: AES-256-CTR of zeros under a key derived from `label`. */
export function stream(label) {
  const key = createHash('sha256').update(`${VERSION}:${label}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(1 << 20);
  return {
    bytes(n) {
      const parts = [];
      let left = n;
      while (left > 0) {
        const k = Math.min(left, zeros.length);
        parts.push(cipher.update(zeros.subarray(0, k)));
        left -= k;
      }
      return parts.length === 1 ? parts[0] : Buffer.concat(parts);
    },
  };
}

const WORDS = 'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if so what no can more out up about into them some only time could these two may then do first any like now my other over such our man me even most made after also did many before must through back years where much your way down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three'.split(' ');

/** Compressible text, deterministic. */
export function text(label, n) {
  const rnd = stream(`text:${label}`).bytes(Math.ceil(n / 3) + 16);
  let out = '';
  let i = 0;
  while (out.length < n) {
    out += WORDS[rnd[i++ % rnd.length] % WORDS.length];
    out += rnd[i++ % rnd.length] % 13 === 0 ? '.\n' : ' ';
  }
  return Buffer.from(out.slice(0, n));
}

export const FIXED_TIME = new Date('2026-01-01T00:00:00Z');

async function writeDet(path, data) {
  await writeFile(path, data);
  await utimes(path, FIXED_TIME, FIXED_TIME);
}

/**
 * The data set under `root`, unchanged: built unless it is there already (a marker file records the
 * version), and built again when a run may have changed it since (`applyChange`; the flag file
 * `<root>.changed` next to the root says so).
 */
export async function freshDataset(root, { small = false } = {}) {
  const changed = `${root}.changed`;
  if (existsSync(changed)) {
    await rm(root, { recursive: true, force: true });
    await rm(changed, { force: true });
  }
  await ensureDataset(root, { small });
}

/**
 * Build the data set under `root` unless it is there already (a marker file records the version).
 * Layout (full shape; the small one has 3 × 4 directories and 8 MiB large files):
 *   small/dNN/dMM/fKKK.{txt,bin}   24k small files (0.5–24 KiB; text and random)
 *   large/big-N.bin                4 × 128 MiB (2 random, 2 half text)
 *   dup/                           a copy of large/big-0.bin and of small/d00
 *   near/                          a near-copy of small/d01 (1 in 50 files changed)
 *   links/                         symlinks: relative, absolute, to a directory, dangling, to a symlink
 *   modes/                         files and a directory with various permission bits (setuid/setgid too)
 */
export async function ensureDataset(root, { small = false, shape: custom } = {}) {
  // `shape` (tests): a shape of their own, e.g. { a: 2, b: 20, k: 50, largeMiB: 48 }; its marker names it.
  const shape = custom ?? shapeOf(small);
  const wanted = custom ? `${VERSION}:${shape.a}/${shape.b}/${shape.k}/${shape.largeMiB}` : markerText(small);
  const marker = join(root, '.complete');
  try {
    if ((await readFile(marker, 'utf8')) === wanted) return;
  } catch {}
  await rm(root, { recursive: true, force: true });
  const rnd = stream('layout').bytes(1 << 20);
  let r = 0;
  const next = () => rnd[r++ % rnd.length];
  // Small files.
  for (let a = 0; a < shape.a; a++) {
    for (let b = 0; b < shape.b; b++) {
      const dir = join(root, 'small', `d${String(a).padStart(2, '0')}`, `d${String(b).padStart(2, '0')}`);
      await mkdir(dir, { recursive: true });
      for (let k = 0; k < shape.k; k++) {
        const size = 512 + ((next() << 8) | next()) % (24 * 1024);
        const label = `${a}/${b}/${k}`;
        const isText = next() % 3 !== 0;
        const data = isText ? text(label, size) : stream(label).bytes(size);
        await writeDet(join(dir, `f${String(k).padStart(3, '0')}.${isText ? 'txt' : 'bin'}`), data);
      }
    }
  }
  // Large files.
  await mkdir(join(root, 'large'), { recursive: true });
  for (let i = 0; i < 4; i++) {
    const fh = await open(join(root, 'large', `big-${i}.bin`), 'w');
    const s = stream(`large-${i}`);
    for (let m = 0; m < shape.largeMiB; m++) {
      const chunk = i >= 2 && m % 2 === 0 ? text(`large-${i}-${m}`, 1 << 20) : s.bytes(1 << 20);
      await fh.write(chunk);
    }
    await fh.close();
    await utimes(join(root, 'large', `big-${i}.bin`), FIXED_TIME, FIXED_TIME);
  }
  // Duplicates.
  await mkdir(join(root, 'dup'), { recursive: true });
  await writeDet(join(root, 'dup', 'big-0-copy.bin'), await readFile(join(root, 'large', 'big-0.bin')));
  await copyTree(join(root, 'small', 'd00'), join(root, 'dup', 'd00'), () => false);
  // Near-copy of a directory: every 50th file changed a little.
  let n = 0;
  await copyTree(join(root, 'small', 'd01'), join(root, 'near', 'd01'), () => n++ % 50 === 0);
  // Symlinks (a restore brings back targets and the links' own mtimes).
  const links = join(root, 'links');
  await mkdir(links, { recursive: true });
  const targets = {
    relative: '../large/big-1.bin',
    absolute: join(root, 'dup', 'big-0-copy.bin'),
    directory: '../small/d02',
    dangling: 'does/not/exist',
    chained: 'relative',
  };
  for (const [name, target] of Object.entries(targets)) {
    await symlink(target, join(links, name));
    await lutimes(join(links, name), FIXED_TIME, FIXED_TIME);
  }
  // Permission bits.
  const modes = join(root, 'modes');
  await mkdir(modes, { recursive: true });
  for (const mode of [0o600, 0o640, 0o644, 0o700, 0o755, 0o444, 0o4755, 0o2750, 0o1777]) {
    const file = join(modes, `m${mode.toString(8)}`);
    await writeDet(file, text(`mode-${mode}`, 2000));
    await chmod(file, mode);
  }
  await mkdir(join(modes, 'private-dir'), { recursive: true });
  await writeDet(join(modes, 'private-dir', 'inside.txt'), text('private', 3000));
  await chmod(join(modes, 'private-dir'), 0o750);
  await writeFile(marker, wanted);
}

async function copyTree(from, to, change) {
  const { readdir, stat } = await import('node:fs/promises');
  await mkdir(to, { recursive: true });
  for (const name of (await readdir(from)).sort()) {
    const src = join(from, name);
    const dst = join(to, name);
    if ((await stat(src)).isDirectory()) await copyTree(src, dst, change);
    else {
      const data = await readFile(src);
      if (change()) data[Math.floor(data.length / 2)] ^= 0xff;
      await writeDet(dst, data);
    }
  }
}

/**
 * Change about 1 % of the data set, deterministically: 1 MiB in the middle of each large file (4 MiB),
 * 1 file in 100 of the small ones rewritten, and a few new files. Flags the set as changed, so that
 * the next `freshDataset` builds it again.
 */
export async function applyChange(root, { small = false } = {}) {
  const shape = shapeOf(small);
  await writeFile(`${root}.changed`, '1');
  for (let i = 0; i < 4; i++) {
    const fh = await open(join(root, 'large', `big-${i}.bin`), 'r+');
    await fh.write(stream(`change-${i}`).bytes(1 << 20), 0, 1 << 20, (shape.largeMiB / 2) << 20);
    await fh.close();
  }
  let k = 0;
  for (let a = 0; a < shape.a; a++) {
    for (let b = 0; b < shape.b; b++) {
      const dir = join(root, 'small', `d${String(a).padStart(2, '0')}`, `d${String(b).padStart(2, '0')}`);
      for (let f = 0; f < shape.k; f++) {
        if (k++ % 100 !== 7) continue;
        const path = join(dir, `f${String(f).padStart(3, '0')}.txt`);
        try {
          const data = await readFile(path);
          await writeFile(path, Buffer.concat([data, text(`append-${k}`, 4096)]));
        } catch {}
      }
    }
  }
  await mkdir(join(root, 'new'), { recursive: true });
  for (let i = 0; i < 100; i++) await writeFile(join(root, 'new', `n${i}.txt`), text(`new-${i}`, 8192));
}
