// Deterministic trees of many small files, for the benchmark's deep-tree and scale steps:
//   deep:  a tree shaped like a system directory (/usr): 12,000 directories of irregular depth and
//          fan-out, 100,000 files of 0–4 KiB (mostly text, some binary, some duplicates), 6,000 symlinks;
//   scale: 1,000,000 files of 0–4 KiB in 50,000 directories (`--scale`).
// Same bytes, names, modes and mtimes on every machine: every choice comes from a seeded integer PRNG, file
// contents are slices of two fixed pools (AES-CTR bytes and word text), and everything is written with
// synchronous calls in one loop (no promise per file, no buffer per file): ~10 s for the deep tree here.
import { closeSync, existsSync, futimesSync, lutimesSync, mkdirSync, openSync, readFileSync, symlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { FIXED_TIME, stream, text } from './dataset.mjs';

const VERSION = 'kiwi-bench-trees-v1';
const FIXED_SECONDS = FIXED_TIME.getTime() / 1000;
const POOL = 4 << 20;
const MAX_FILE = 4096;

/** mulberry32: a small PRNG of 32-bit integers (Math.imul and shifts only: the same on every machine). */
function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const WORDS = ['core', 'util', 'net', 'gtk', 'xml', 'ssl', 'python3', 'perl', 'font', 'icon', 'locale', 'doc', 'man', 'zlib', 'curl', 'dbus', 'udev', 'glib', 'pango', 'cairo', 'mesa', 'x11', 'audio', 'video', 'print', 'kernel', 'crypto', 'config', 'data', 'theme', 'sound', 'input', 'image', 'base', 'common', 'tools', 'extra', 'plugin', 'module', 'schema'];
const TEXT_EXT = ['txt', 'h', 'py', 'conf', 'md', '1.gz', 'desktop', 'json', 'pm', 'xml', 'rules', 'service'];
const BIN_EXT = ['so.1', 'mo', 'png', 'a', 'pyc', 'bin'];

function pools() {
  return { random: stream('trees:random').bytes(POOL), text: text('trees:text', POOL) };
}

/** Whether `root` holds a complete tree of this kind and parameters (its marker file says so). */
function complete(root, id) {
  try {
    return readFileSync(join(root, '.complete'), 'utf8') === id;
  } catch {
    return false;
  }
}

function clear(root) {
  if (existsSync(root)) spawnSync('rm', ['-rf', root], { stdio: 'inherit' });
}

/** Writes files with one reused pool per kind; counts what it wrote. */
function writer(p) {
  const stats = { dirs: 0, files: 0, symlinks: 0, bytes: 0 };
  return {
    stats,
    dir(path) {
      mkdirSync(path, { mode: 0o755 });
      stats.dirs++;
    },
    file(path, isText, offset, size, mode) {
      const fd = openSync(path, 'w', mode);
      if (size > 0) writeSync(fd, isText ? p.text : p.random, offset, size, 0);
      futimesSync(fd, FIXED_SECONDS, FIXED_SECONDS);
      closeSync(fd);
      stats.files++;
      stats.bytes += size;
    },
    symlink(target, path) {
      symlinkSync(target, path);
      lutimesSync(path, FIXED_SECONDS, FIXED_SECONDS);
      stats.symlinks++;
    },
  };
}

/** Runs `build` with umask 022, so that the modes asked for are the modes written. */
function withUmask(build) {
  const old = process.umask(0o022);
  try {
    return build();
  } finally {
    process.umask(old);
  }
}

export const DEEP_FULL = { dirs: 12000, files: 100000, symlinks: 6000 };
export const DEEP_SMALL = { dirs: 1200, files: 10000, symlinks: 600 };

/**
 * The deep tree under `root` (built unless there already). Top level as in /usr (bin, include, lib,
 * libexec, sbin, share, src, etc); below it directories are added breadth first with a fan-out that
 * varies a lot (most directories have none or one subdirectory, a few have dozens) and shrinks with
 * depth, down to 18 levels, until `dirs` exist. Files go to directories by heavy-tailed weights (a few large flat directories like
 * bin/, many with a handful), 0–4 KiB skewed to small, 80 % text (95 % outside bin/, sbin/, lib/), 3 %
 * empty, 5 % duplicates of an earlier file; symlinks point to a sibling file (most), to another
 * directory, to an absolute path, or nowhere. Returns the counts.
 */
export function ensureDeepTree(root, { dirs = DEEP_FULL.dirs, files = DEEP_FULL.files, symlinks = DEEP_FULL.symlinks } = {}) {
  const id = `${VERSION}:deep:${dirs}:${files}:${symlinks}`;
  const statsFile = join(root, '.stats.json');
  if (complete(root, id)) return JSON.parse(readFileSync(statsFile, 'utf8'));
  clear(root);
  return withUmask(() => {
    const next = prng(0x6b697769);
    const w = writer(pools());
    // Directories: [path, depth, top-level name], parents before children.
    mkdirSync(root, { recursive: true, mode: 0o755 });
    const top = ['bin', 'etc', 'include', 'lib', 'libexec', 'sbin', 'share', 'src'];
    const list = [];
    for (const name of top) {
      w.dir(join(root, name));
      list.push([join(root, name), 1, name]);
    }
    const fanTop = Math.max(3, Math.round((dirs / 12000) * 30));
    // Breadth first; a pass that ends before `dirs` starts over at the top (the tree dies out on its own,
    // the fan-out shrinking with depth, so that depths spread as in /usr: most at 5–9, a tail to ~18).
    for (let q = 0, pass = 0; list.length < dirs; q++) {
      if (q === list.length) [q, pass] = [0, pass + 1];
      const [parent, depth, kind] = list[q];
      if (kind === 'bin' || kind === 'sbin') continue; // flat, as in /usr/bin
      let n = 0;
      if (depth === 1 && pass === 0) n = fanTop + (next() % fanTop);
      else if (depth < 18 && next() % 100 >= (depth <= 4 ? 50 : depth <= 6 ? 66 : depth <= 9 ? 72 : 80)) {
        const r = next() % 100;
        n = r < 50 ? 1 : r < 70 ? 2 : r < 88 ? 3 + (next() % 3) : r < 97 ? 6 + (next() % 7) : 13 + (next() % 28);
      }
      for (let k = 0; k < n && list.length < dirs; k++) {
        const path = join(parent, `${WORDS[next() % WORDS.length]}-${pass}-${k}`);
        w.dir(path);
        list.push([path, depth + 1, kind]);
      }
    }
    // Files: integer weights (heavy-tailed), then exactly `files` spread by weight.
    const weights = new Uint32Array(list.length);
    let total = 0;
    for (let i = 0; i < list.length; i++) {
      const kind = list[i][2];
      const r = next() % 100;
      let wt = r < 30 ? 0 : r < 85 ? 1 + (next() % 8) : r < 97 ? 10 + (next() % 40) : 50 + (next() % 300);
      if (list[i][1] === 1 && (kind === 'bin' || kind === 'sbin' || kind === 'include')) wt = Math.ceil(files / 40);
      weights[i] = wt;
      total += wt;
    }
    const counts = new Uint32Array(list.length);
    let placed = 0;
    for (let i = 0; i < list.length; i++) {
      counts[i] = Math.floor((files * weights[i]) / total);
      placed += counts[i];
    }
    for (let i = 0; placed < files; i = (i + 1) % list.length) {
      if (weights[i] > 0) {
        counts[i]++;
        placed++;
      }
    }
    const fileNames = []; // per directory: its files' names (symlink targets)
    const written = []; // [isText, offset, size] of earlier files, for duplicates
    for (let i = 0; i < list.length; i++) {
      const [dir, , kind] = list[i];
      const exec = kind === 'bin' || kind === 'sbin' || kind === 'libexec';
      const binShare = exec || kind === 'lib' ? 40 : 5;
      const names = [];
      for (let k = 0; k < counts[i]; k++) {
        let isText;
        let offset;
        let size;
        if (written.length > 0 && next() % 100 < 5) [isText, offset, size] = written[next() % written.length];
        else {
          isText = next() % 100 >= binShare;
          const r = next() % 100;
          size = r < 3 ? 0 : isText ? ((next() % (MAX_FILE + 1)) * (next() % (MAX_FILE + 1))) >>> 12 : next() % (MAX_FILE + 1);
          offset = next() % (POOL - MAX_FILE);
          if (written.length < 50000) written.push([isText, offset, size]);
        }
        const word = WORDS[next() % WORDS.length];
        const name = exec ? `${word}${k}` : `${isText ? '' : 'lib'}${word}${k}.${isText ? TEXT_EXT[next() % TEXT_EXT.length] : BIN_EXT[next() % BIN_EXT.length]}`;
        const mode = exec ? 0o755 : next() % 50 === 0 ? 0o600 : 0o644;
        w.file(join(dir, name), isText, offset, size, mode);
        names.push(name);
      }
      fileNames.push(names);
    }
    // Symlinks.
    for (let s = 0; s < symlinks; s++) {
      const i = next() % list.length;
      const [dir, depth] = list[i];
      const r = next() % 100;
      let target;
      if (r < 60 && fileNames[i].length > 0) target = fileNames[i][next() % fileNames[i].length];
      else if (r < 85) target = `${'../'.repeat(depth)}${list[next() % list.length][0].slice(root.length + 1)}`;
      else if (r < 95) target = `/usr/${list[next() % list.length][0].slice(root.length + 1)}`;
      else target = `missing-${s}`;
      w.symlink(target, join(dir, `link${s}${r < 60 ? '.so' : ''}`));
    }
    // Directory mtimes last (creating entries changed them), deepest first.
    for (let i = list.length - 1; i >= 0; i--) utimesSync(list[i][0], FIXED_SECONDS, FIXED_SECONDS);
    const stats = { ...w.stats, entries: w.stats.dirs + w.stats.files + w.stats.symlinks, maxDepth: list.reduce((m, d) => Math.max(m, d[1]), 0) };
    writeFileSync(statsFile, JSON.stringify(stats));
    writeFileSync(join(root, '.complete'), id);
    utimesSync(root, FIXED_SECONDS, FIXED_SECONDS);
    return stats;
  });
}

/**
 * The scale tree under `root`: `files` files of 0–4 KiB (uniform; 75 % text) in `files / 20` directories
 * (`dNN/dMMM`, up to 1,000 per parent), 20 files each. Returns the counts.
 */
export function ensureScaleTree(root, { files = 1_000_000 } = {}) {
  const id = `${VERSION}:scale:${files}`;
  const statsFile = join(root, '.stats.json');
  if (complete(root, id)) return JSON.parse(readFileSync(statsFile, 'utf8'));
  clear(root);
  return withUmask(() => {
    const next = prng(0x7363616c);
    const w = writer(pools());
    mkdirSync(root, { recursive: true, mode: 0o755 });
    const leaves = Math.ceil(files / 20);
    const parents = Math.ceil(leaves / 1000);
    let left = files;
    const dirs = [];
    for (let a = 0; a < parents; a++) {
      const parent = join(root, `d${String(a).padStart(2, '0')}`);
      w.dir(parent);
      dirs.push(parent);
      for (let b = 0; b < 1000 && a * 1000 + b < leaves; b++) {
        const dir = join(parent, `d${String(b).padStart(3, '0')}`);
        w.dir(dir);
        dirs.push(dir);
        for (let k = 0; k < 20 && left > 0; k++, left--) {
          const isText = next() % 4 !== 0;
          const size = next() % (MAX_FILE + 1);
          const name = `${WORDS[next() % WORDS.length]}-file-${k}.${isText ? 'txt' : 'bin'}`;
          w.file(join(dir, name), isText, next() % (POOL - MAX_FILE), size, 0o644);
        }
      }
    }
    for (let i = dirs.length - 1; i >= 0; i--) utimesSync(dirs[i], FIXED_SECONDS, FIXED_SECONDS);
    const stats = { ...w.stats, entries: w.stats.dirs + w.stats.files };
    writeFileSync(statsFile, JSON.stringify(stats));
    writeFileSync(join(root, '.complete'), id);
    utimesSync(root, FIXED_SECONDS, FIXED_SECONDS);
    return stats;
  });
}
