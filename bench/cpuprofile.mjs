// Summaries of V8 CPU profiles (`node --cpu-prof`): self time by function, and time by Kiwi source
// file and by Kiwi package directory, mapped through the bundles' source maps.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const B64 = new Map([...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].map((c, i) => [c, i]));

/**
 * A source map's mappings, decoded: per generated line, [column, source index, source line] triples in
 * column order. Only what a lookup needs (no names, no source columns kept).
 */
function decodeMappings(mappings) {
  const lines = [];
  let src = 0;
  let srcLine = 0;
  let srcCol = 0;
  for (const lineText of mappings.split(';')) {
    const segs = [];
    let col = 0;
    for (const seg of lineText.split(',')) {
      if (seg === '') continue;
      const vals = [];
      let value = 0;
      let shift = 0;
      for (const ch of seg) {
        const digit = B64.get(ch);
        if (digit === undefined) throw new Error(`bad source map character ${JSON.stringify(ch)}`);
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          vals.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      col += vals[0];
      if (vals.length >= 4) {
        src += vals[1];
        srcLine += vals[2];
        srcCol += vals[3];
        segs.push(col, src, srcLine);
      }
    }
    lines.push(segs);
  }
  return lines;
}

/** Maps generated positions of the files under `repoRoot` to their sources, through `<file>.map`. */
export function sourceMapper(repoRoot) {
  const maps = new Map();
  const load = (file) => {
    if (maps.has(file)) return maps.get(file);
    let map = null;
    try {
      const json = JSON.parse(readFileSync(`${file}.map`, 'utf8'));
      map = { sources: json.sources.map((s) => relative(repoRoot, resolve(dirname(file), json.sourceRoot ?? '', s))), lines: decodeMappings(json.mappings) };
    } catch {}
    maps.set(file, map);
    return map;
  };
  /** The source file (relative to repoRoot) of a 0-based line and column of `url`, or the file itself. */
  return (url, line, column) => {
    let file;
    try {
      file = url.startsWith('file:') ? fileURLToPath(url) : url;
    } catch {
      return url;
    }
    const rel = relative(repoRoot, file);
    if (rel.startsWith('..') || !existsSync(file)) return url;
    const map = load(file);
    const segs = map?.lines[line];
    if (!segs || segs.length === 0) return rel;
    let found = -1;
    for (let i = 0; i < segs.length; i += 3) {
      if (segs[i] <= column) found = i;
      else break;
    }
    return found >= 0 ? map.sources[segs[found + 1]] : rel;
  };
}

/** Where a frame's code lives: a Kiwi source file, a package in node_modules, node's own code, or V8. */
function place(frame, mapSource) {
  const { url, functionName, lineNumber, columnNumber } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return url;
  const src = mapSource(url, lineNumber, columnNumber);
  const nm = src.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = src.slice(nm + 'node_modules/'.length).split('/');
    return `node_modules/${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  return src;
}

const isKiwi = (p) => /^(packages|apps|plugins)\//.test(p);
/** A Kiwi source file's group: its package and first directory under src (core/backup, core/crypto...). */
function kiwiGroup(p) {
  const parts = p.split('/');
  const srcAt = parts.indexOf('src');
  if (srcAt < 0) return `${parts[0]}/${parts[1]}`;
  const sub = parts.length > srcAt + 2 ? `/${parts[srcAt + 1]}` : '';
  return `${parts[1]}${sub}`;
}

/**
 * Summarizes one profile: total sampled time, self time by function (with its source file), and time
 * by "stage": each sample counts for the innermost Kiwi frame on its stack (so the crypto, fs and zstd
 * calls a Kiwi function makes count for that function's file), grouped by file and by package directory.
 */
export function summarizeProfile(profile, mapSource) {
  const nodes = new Map();
  for (const n of profile.nodes) nodes.set(n.id, n);
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map(); // node id → µs
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : 0;
    if (dt > 0) self.set(samples[i], (self.get(samples[i]) ?? 0) + dt);
  }
  const placeOf = new Map();
  const where = (id) => {
    if (!placeOf.has(id)) placeOf.set(id, place(nodes.get(id).callFrame, mapSource));
    return placeOf.get(id);
  };
  const kiwiOf = new Map();
  const innermostKiwi = (id) => {
    if (kiwiOf.has(id)) return kiwiOf.get(id);
    const p = where(id);
    const up = parent.get(id);
    const k = isKiwi(p) ? p : up === undefined ? null : innermostKiwi(up);
    kiwiOf.set(id, k);
    return k;
  };
  const byFunction = new Map();
  const byFile = new Map();
  const byGroup = new Map();
  let total = 0;
  const add = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us);
  for (const [id, us] of self) {
    total += us;
    const f = nodes.get(id).callFrame;
    const p = where(id);
    const special = ['(idle)', '(garbage collector)', '(program)', '(root)'].includes(f.functionName) ? f.functionName : null;
    add(byFunction, special ?? `${f.functionName || '(anonymous)'}  ${p}`, us);
    const k = innermostKiwi(id);
    const stage = special ?? k ?? `outside Kiwi: ${p.startsWith('node:') ? 'node' : p}`;
    add(byFile, stage, us);
    add(byGroup, special ?? (k ? kiwiGroup(k) : stage), us);
  }
  const idle = byFile.get('(idle)') ?? 0;
  return { totalUs: total, idleUs: idle, byFunction, byFile, byGroup };
}

/** Markdown tables of the top `top` rows of each view, percentages of the busy (non-idle) time. */
export function formatSummary(title, s, top = 15) {
  const busy = s.totalUs - s.idleUs;
  const ms = (us) => (us / 1000).toFixed(0);
  const pct = (us) => `${((100 * us) / busy).toFixed(1)} %`;
  const table = (head, map, n) => {
    const rows = [...map].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
    const out = [`| ${head} | ms | share of busy time |`, '| --- | ---: | ---: |'];
    for (const [k, us] of rows.slice(0, n)) out.push(`| ${k.replace(/\|/g, '\\|')} | ${ms(us)} | ${pct(us)} |`);
    if (rows.length > n) out.push(`| (${rows.length - n} more) | ${ms(rows.slice(n).reduce((a, [, us]) => a + us, 0))} | |`);
    return out.join('\n');
  };
  return [
    `### ${title}`,
    '',
    `Sampled ${ms(s.totalUs)} ms of the thread: busy ${ms(busy)} ms (running, or ready to run while the cores were taken), idle ${ms(s.idleUs)} ms (waiting for I/O, timers or other threads).`,
    '',
    'By stage (each sample counts for the innermost Kiwi function on its stack; package/first directory under src):',
    '',
    table('Kiwi package / directory', s.byGroup, top),
    '',
    'By Kiwi source file (same attribution):',
    '',
    table('source file', s.byFile, top),
    '',
    'Top functions by self time:',
    '',
    table('function  source', s.byFunction, top),
    '',
  ].join('\n');
}

/** Summaries of every profile file given (one per thread), as Markdown. */
export function summarizeFiles(repoRoot, title, files, top) {
  const mapSource = sourceMapper(repoRoot);
  const parts = [];
  for (const f of files) {
    const m = /\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(f);
    const thread = m && m[2] !== '0' ? ` (worker thread ${m[2]})` : files.length > 1 ? ' (main thread)' : '';
    parts.push(formatSummary(`${title}${thread}`, summarizeProfile(JSON.parse(readFileSync(f, 'utf8')), mapSource), top));
  }
  return parts.join('\n');
}
