/**
 * The standing hostile-input suite (issue #13). Each scenario builds a repository with a known
 * password, one intact snapshot of a real source, and one kind of hostile or damaged object
 * (written through the public test API, @kiwi-backup/core/testing). Then every reading command runs
 * over it — snapshots, ls, diff, restore, check, check --read-data, backup, repair, prune --dry-run —
 * and each run must:
 *   - exit with a documented code (no crash: never a signal, never an exit code outside the table),
 *   - print no stack trace,
 *   - finish within {@link COMMAND_TIMEOUT_MS} (no hang),
 *   - stay under {@link PEAK_RSS_LIMIT_MIB} of peak memory (measured by /usr/bin/time),
 *   - write nothing outside a restore's target;
 * `check` must name the hostile object, and afterwards the intact snapshot still restores exactly
 * and a new backup of the source restores exactly.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostileRepo, dirNode, fileNode, treeJson, zstdBomb } from '@kiwi-backup/core/testing';
import { createLocalStorage } from '@kiwi-backup/storage-local';
import { KIWI_BIN, bytes, removeDir, snapshotTree, tempDir } from './helpers.js';

/** Every run must end within this (a hang is a failure). */
const COMMAND_TIMEOUT_MS = 60_000;
/** And stay under this peak resident memory: the repositories here are tiny; a bomb would need gigabytes. */
const PEAK_RSS_LIMIT_MIB = 400;
/** The exit codes the README documents. */
const DOCUMENTED = new Set([0, 1, 2, 3, 10, 11, 12, 13]);
const GiB = 1024 ** 3;
const TIME = '/usr/bin/time';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  rssMiB: number;
  timedOut: boolean;
}

/** Run the built CLI under /usr/bin/time (peak RSS), killed after the timeout. */
function kiwi(args: string[], env: NodeJS.ProcessEnv, rssFile: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(TIME, ['-f', '%M', '-o', rssFile, process.execPath, KIWI_BIN, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, COMMAND_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', async (code, signal) => {
      clearTimeout(timer);
      let rssMiB = NaN;
      try {
        rssMiB = Number((await readFile(rssFile, 'utf8')).trim().split('\n').pop()) / 1024;
      } catch {
        // time writes nothing when it was killed
      }
      resolve({ code, signal, stdout, stderr, rssMiB, timedOut });
    });
  });
}

interface Built {
  /** The hostile snapshot's id, when the scenario made one. */
  hostile?: string;
  /** What `check` must name (a file path or a blob id). */
  names: string;
}

interface Scenario {
  name: string;
  build(h: HostileRepo, ctx: { repo: string; damaged: string }): Promise<Built>;
  /** Exit codes plain `check` may end with (default: 1, it found something); `check --read-data` always finds it. */
  checkCodes?: number[];
  /** Exit codes `check --read-data` may end with (default: 1). */
  readDataCodes?: number[];
}

/** Flip a byte of a file in place. */
async function flip(path: string, at: (size: number) => number): Promise<void> {
  const b = await readFile(path);
  const i = at(b.byteLength);
  b[i] = b[i]! ^ 0x5a;
  await writeFile(path, b);
}

/** The pack files of the repository that hold the `damaged` source's data (written by its backup). */
async function packsOf(repo: string, before: Set<string>): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await readdir(join(repo, 'data'))) {
    for (const n of await readdir(join(repo, 'data', sub))) if (!n.startsWith('.') && !before.has(n)) out.push(join(repo, 'data', sub, n));
  }
  return out;
}

const scenarios: Scenario[] = [
  {
    name: 'an index file that is a zstd bomb (8 GiB from 262 KB)',
    build: async (h) => ({ names: `index/${await h.writeRawIndexFile(zstdBomb(8 * GiB), { payload: true })}` }),
  },
  {
    name: 'an index file whose frame declares 8 GiB',
    build: async (h) => ({ names: `index/${await h.writeRawIndexFile(zstdBomb(8 * GiB, { declareSize: true }), { payload: true })}` }),
  },
  {
    name: 'an index file claiming 4 billion packs',
    build: async (h) => {
      const body = Buffer.alloc(16);
      body.write('KIDX', 0, 'latin1');
      body[4] = 1;
      body.writeUInt32LE(0xffffffff, 12);
      return { names: `index/${await h.writeRawIndexFile(body)}` };
    },
  },
  {
    name: 'a snapshot file that is a zstd bomb',
    build: async (h) => {
      const id = await h.writeRawSnapshot(zstdBomb(8 * GiB), { payload: true });
      return { names: `snapshots/${id}` };
    },
  },
  {
    name: 'a tree blob that is a zstd bomb, with a huge raw length',
    build: async (h) => {
      const tree = await h.writeRawTreeBlob(Buffer.from('{"nodes":[]}'), { payload: zstdBomb(8 * GiB), rawLength: 0xffffffff });
      return { hostile: await h.writeRawSnapshot(h.snapshotJson(tree)), names: tree };
    },
  },
  {
    name: 'a data blob that is a zstd bomb',
    build: async (h) => {
      const data = await h.writeRawDataBlob(Buffer.from('x'.repeat(1000)), { payload: zstdBomb(8 * GiB) });
      const tree = await h.writeTree([fileNode('bomb.bin', { size: 1000, content: [data] })]);
      return { hostile: await h.writeRawSnapshot(h.snapshotJson(tree)), names: data };
    },
  },
  {
    name: 'an unindexed pack whose trailer claims a 4 GiB header',
    build: async (h) => {
      const bytesOut = Buffer.concat([bytes(5000, 9), Buffer.from([0xf0, 0xff, 0xff, 0xff])]);
      const name = await h.saveNamed('data', bytesOut);
      return { names: name };
    },
    // An unindexed pack is a warning for check (reclaimable), its header read only by backups.
    checkCodes: [0],
    readDataCodes: [0, 1],
  },
  {
    name: 'a crafted tree: null entries, bad times and ids, NUL in a link target, names with / and .., duplicates, unknown types',
    build: async (h) => {
      const data = await h.writeRawDataBlob(Buffer.from('fine'));
      const tree = await h.writeTree([
        null,
        fileNode('../escape', { size: 4, content: [data] }),
        fileNode('a/b', { size: 4, content: [data] }),
        fileNode('', { size: 4, content: [data] }),
        fileNode('bad-mtime', { mtimeNs: 'yesterday' }),
        fileNode('dup', { size: 4, content: [data] }),
        fileNode('dup', { size: 4, content: [data] }),
        fileNode('fine.txt', { size: 4, content: [data] }),
        fileNode('huge', { size: 2 ** 60, content: [data] }),
        fileNode('neg-uid', { uid: -7 }),
        fileNode('big-uid', { uid: 2 ** 32 }),
        fileNode('weird', { type: 'portal' }),
        { ...fileNode('link'), type: 'symlink', content: undefined, linkTarget: 'a\u0000b' },
        fileNode('not-a-list', { content: 'nope' }),
      ]);
      return { hostile: await h.writeRawSnapshot(h.snapshotJson(tree)), names: tree };
    },
  },
  {
    name: 'directories nested 1500 deep',
    build: async (h) => {
      // All 1501 trees in one pack (a pack and an index file each would test the index loader instead).
      const blobs = [{ type: 'tree' as const, plaintext: treeJson([fileNode('bottom.txt')]) }];
      let tree = h.blobId(blobs[0]!.plaintext);
      for (let i = 0; i < 1500; i++) {
        const plaintext = treeJson([dirNode('d', tree)]);
        tree = h.blobId(plaintext);
        blobs.push({ type: 'tree', plaintext });
      }
      await h.writePack(blobs);
      return { hostile: await h.writeRawSnapshot(h.snapshotJson(tree)), names: 'deeper than' };
    },
  },
  {
    name: 'a snapshot whose fields are of the wrong types',
    build: async (h) => {
      const tree = await h.writeTree([]);
      const id = await h.writeRawSnapshot(h.snapshotJson(tree, { time: 12, paths: 'not-a-list', tags: [1, 2], hostname: { a: 1 } }));
      return { names: `snapshots/${id}` };
    },
  },
  {
    name: 'a flipped byte in an index file',
    build: async (_h, { repo }) => {
      const [name] = (await readdir(join(repo, 'index'))).filter((n) => !n.startsWith('.'));
      await flip(join(repo, 'index', name!), (n) => Math.floor(n / 2));
      return { names: `index/${name}` };
    },
  },
  {
    name: 'a flipped byte inside a pack of the other source',
    build: async (_h, { damaged }) => {
      const [pack] = damaged.split('\n');
      await flip(pack!, () => 100);
      return { names: pack!.split('/').pop()! };
    },
    // Damage inside a pack of intact size is what only --read-data finds (docs/maintenance.md).
    checkCodes: [0],
  },
  {
    name: 'a truncated pack of the other source',
    build: async (_h, { damaged }) => {
      const [pack] = damaged.split('\n');
      const b = await readFile(pack!);
      await writeFile(pack!, b.subarray(0, b.byteLength - 777));
      return { names: pack!.split('/').pop()! };
    },
  },
  {
    name: 'a deleted pack of the other source',
    build: async (_h, { damaged }) => {
      const [pack] = damaged.split('\n');
      await rm(pack!);
      return { names: pack!.split('/').pop()! };
    },
  },
  {
    name: 'a lock file of garbage, and a key file with scrypt parameters that would need 1 TiB',
    build: async (h) => {
      await h.writeRawLockFile('this is not a lock');
      const key = await h.writeRawKeyFile({ version: 1, kdf: 'scrypt', N: 2 ** 30, r: 8, p: 1, salt: 'AAAA', created: 'x', hostname: 'h', username: 'u', data: 'AAAA' });
      return { names: `keys/${key}` };
    },
  },
];

describe.skipIf(!existsSync(TIME) && process.env.CI !== 'true')('hostile repositories: every reading command stays safe', () => {
  let work: string;

  beforeAll(async () => {
    if (!existsSync(TIME)) throw new Error(`${TIME} is missing (Debian package "time"): the suite measures peak memory with it`);
    work = await tempDir('kiwi-hostile-');
  });
  afterAll(() => removeDir(work));

  for (const [n, scenario] of scenarios.entries()) {
    it(scenario.name, async () => {
      const dir = join(work, `s${n}`);
      const src = join(dir, 'src');
      const other = join(dir, 'other');
      const repo = join(dir, 'repo');
      await mkdir(join(src, 'sub'), { recursive: true });
      await mkdir(other, { recursive: true });
      await writeFile(join(src, 'a.txt'), 'intact data\n');
      await writeFile(join(src, 'sub', 'b.bin'), bytes(200_000, n + 1));
      await writeFile(join(other, 'c.bin'), bytes(300_000, n + 100));
      const env = { KIWI_DATA_DIR: join(dir, 'data'), KIWI_CACHE_DIR: join(dir, 'cache'), KIWI_REPOSITORY: repo, KIWI_PASSWORD: 'pw' };
      const rss = join(dir, 'rss');
      const run = (args: string[]) => kiwi(args, env, rss);

      expect((await run(['init'])).code).toBe(0);
      const first = await run(['backup', src, '--json']);
      expect(first.code, first.stderr).toBe(0);
      const good = String(JSON.parse(first.stdout.trim().split('\n').pop()!).snapshot_id);
      const packsBefore = new Set((await packsOf(repo, new Set())).map((p) => p.split('/').pop()!));
      expect((await run(['backup', other])).code).toBe(0);
      // Its data pack first (the largest): damage there touches no tree.
      const { stat } = await import('node:fs/promises');
      const newPacks = await packsOf(repo, packsBefore);
      const sizes = new Map(await Promise.all(newPacks.map(async (p) => [p, (await stat(p)).size] as const)));
      const damaged = newPacks.sort((a, b) => sizes.get(b)! - sizes.get(a)!).join('\n');

      const storage = createLocalStorage(repo);
      const h = await HostileRepo.open(storage, 'pw');
      const built = await scenario.build(h, { repo, damaged });
      await storage.close();

      const outside = join(dir, 'outside');
      await mkdir(outside);
      const target = join(outside, 'target');
      const hostile = built.hostile ? built.hostile.slice(0, 12) : 'latest';
      const commands: string[][] = [
        ['snapshots'],
        ['snapshots', '--json'],
        ['ls', hostile],
        ['ls', '-l', hostile, '--json'],
        ['diff', good.slice(0, 12), hostile],
        ['restore', hostile, '--target', target],
        ['check'],
        ['check', '--read-data', '--json'],
        ['prune', '--dry-run'],
        ['repair', 'index', '--dry-run'],
        ['repair', 'snapshots', '--dry-run'],
      ];
      const results = new Map<string, Run>();
      for (const args of commands) {
        const r = await run(args);
        const what = `kiwi ${args.join(' ')}`;
        results.set(args.join(' '), r);
        expect(r.timedOut, `${what}: hung`).toBe(false);
        expect(r.signal, `${what}: killed by ${r.signal}\n${r.stderr}`).toBeNull();
        expect(DOCUMENTED.has(r.code!), `${what}: undocumented exit code ${r.code}\n${r.stderr}`).toBe(true);
        expect(r.stderr, `${what}: a stack trace`).not.toMatch(/\n\s+at .+[(:]\d+/);
        expect(r.rssMiB, `${what}: peak RSS ${r.rssMiB} MiB`).toBeLessThan(PEAK_RSS_LIMIT_MIB);
      }
      // Nothing outside the restore's target.
      expect((await readdir(outside)).filter((e) => e !== 'target')).toEqual([]);
      // check names the hostile object.
      const check = results.get('check')!;
      expect(scenario.checkCodes ?? [1], `check: ${check.stderr}`).toContain(check.code);
      const readData = results.get('check --read-data --json')!;
      expect(scenario.readDataCodes ?? [1], `check --read-data: ${readData.stderr}`).toContain(readData.code);
      if (readData.code === 1) expect(`${check.stderr}\n${readData.stdout}`).toContain(built.names);

      // The intact snapshot still restores exactly; a new backup works and restores exactly too.
      const restoreGood = await run(['restore', good.slice(0, 12), '--target', join(dir, 'good')]);
      expect(restoreGood.code, restoreGood.stderr).toBe(0);
      expect(await snapshotTree(join(dir, 'good', src))).toEqual(await snapshotTree(src));
      const again = await run(['backup', src, '--json']);
      expect([0, 3], again.stderr).toContain(again.code);
      expect(again.stderr).not.toMatch(/\n\s+at .+[(:]\d+/);
      expect(again.rssMiB).toBeLessThan(PEAK_RSS_LIMIT_MIB);
      const newest = String(JSON.parse(again.stdout.trim().split('\n').pop()!).snapshot_id);
      const restoreNew = await run(['restore', newest.slice(0, 12), '--target', join(dir, 'new')]);
      expect(restoreNew.code, restoreNew.stderr).toBe(0);
      expect(await snapshotTree(join(dir, 'new', src))).toEqual(await snapshotTree(src));
    }, 20 * COMMAND_TIMEOUT_MS);
  }
});
