import { describe, expect, it, beforeEach, afterEach } from 'vitest';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, rm, symlink, writeFile, chmod, readdir } from 'node:fs/promises';
import { writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const eaccesSync = (p: Buffer) =>
  Object.assign(new Error(`EACCES: permission denied, scandir '${p.toString()}'`), { code: 'EACCES' });

import { walk, WalkConfigError, type WalkEvent, type WalkOptions, type WalkFs } from '../../src/index.js';

let root: string;
let rootBuf: Buffer;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiwi-walk-'));
  rootBuf = Buffer.from(root);
});
afterEach(async () => {
  await chmod(root, 0o755).catch(() => {});
  await rm(root, { recursive: true, force: true });
});

/** Creates files/dirs from a list of relative paths (trailing '/' = dir). */
function tree(paths: string[]): void {
  for (const p of paths) {
    const abs = join(root, p);
    if (p.endsWith('/')) mkdirSync(abs, { recursive: true });
    else {
      mkdirSync(join(abs, '..'), { recursive: true });
      writeFileSync(abs, p);
    }
  }
}

/** Path relative to `root` as latin1-safe text ('.' for root). */
function rel(pathBuf: Buffer): string {
  if (pathBuf.equals(rootBuf)) return '.';
  return pathBuf.subarray(rootBuf.length + 1).toString('utf8');
}

function describeEvent(e: WalkEvent): string {
  switch (e.kind) {
    case 'enter':
      return `enter ${rel(e.entry.pathBuf)}`;
    case 'leave':
      return `leave ${rel(e.entry.pathBuf)}${e.incomplete ? ` (${e.incomplete})` : ''}`;
    case 'entry':
      return `${e.entry.type} ${rel(e.entry.pathBuf)}`;
    case 'error':
      return `error ${e.op} ${rel(e.pathBuf)} ${e.error.code ?? e.error.message}`;
  }
}

async function run(options: WalkOptions = {}, sources = [root]): Promise<string[]> {
  const out: string[] = [];
  for await (const e of walk(sources, options)) out.push(describeEvent(e));
  return out;
}

describe('walk', () => {
  it('walks depth first, sorted by name bytes, with enter/leave nesting and lstat data', async () => {
    tree(['b', 'a/z', 'a/y/x', 'A', 'a.txt', 'c/']);
    const events: WalkEvent[] = [];
    for await (const e of walk([root])) events.push(e);
    expect(events.map(describeEvent)).toEqual([
      'enter .',
      'file A',
      'enter a',
      'enter a/y',
      'file a/y/x',
      'leave a/y',
      'file a/z',
      'leave a',
      'file a.txt',
      'file b',
      'enter c',
      'leave c',
      'leave .',
    ]);
    const x = events.find((e) => e.kind === 'entry' && rel(e.entry.pathBuf) === 'a/y/x');
    if (x?.kind !== 'entry') throw new Error('missing a/y/x');
    const st = await lstat(join(root, 'a/y/x'), { bigint: true });
    expect(x.entry.stat.ino).toBe(st.ino);
    expect(x.entry.stat.mtimeNs).toBe(st.mtimeNs);
    expect(x.entry.depth).toBe(3);
    expect(x.entry.name.toString()).toBe('x');
    expect(x.entry.path).toBe(join(root, 'a/y/x'));
    expect(x.entry.parentPath).toBe(join(root, 'a/y'));
    expect(x.entry.source).toBe(root);
    expect(events[0]?.kind === 'enter' && events[0].entry.depth).toBe(0);
  });

  it('keeps non-UTF-8 names as exact bytes and sorts by bytes', async () => {
    const names = [Buffer.from([0x66, 0xff, 0x31]), Buffer.from([0x66, 0x80]), Buffer.from('f\u00e9'), Buffer.from('f')];
    for (const n of names) writeFileSync(Buffer.concat([rootBuf, Buffer.from('/'), n]), 'x');
    const got: Buffer[] = [];
    for await (const e of walk([root])) {
      if (e.kind === 'entry') {
        got.push(e.entry.name);
        expect((await lstat(e.entry.pathBuf)).isFile()).toBe(true);
      }
    }
    expect(got.map((b) => b.toString('hex'))).toEqual(
      [...names].sort(Buffer.compare).map((b) => b.toString('hex')),
    );
  });

  it('reports symlinks (also broken) without following them, and fifos/sockets by type', async () => {
    tree(['d/f']);
    await symlink('d', join(root, 'link-dir'));
    await symlink('nowhere', join(root, 'broken'));
    execFileSync('mkfifo', [join(root, 'fifo')]);
    const sock = join(root, 'sock');
    const server: Server = createServer();
    await new Promise<void>((res) => server.listen(sock, res));
    try {
      // A fifo with no writer blocks any open(): finishing at all shows it was not opened.
      expect(await run()).toEqual([
        'enter .',
        'symlink broken',
        'enter d',
        'file d/f',
        'leave d',
        'fifo fifo',
        'symlink link-dir',
        'socket sock',
        'leave .',
      ]);
    } finally {
      server.close();
    }
    const dev: string[] = [];
    for await (const e of walk(['/dev/null'])) dev.push(e.kind === 'entry' ? e.entry.type : e.kind);
    expect(dev).toEqual(['chardev']);
  });

  it('walks a file or symlink source as a single entry; a missing source is an error event', async () => {
    tree(['f']);
    await symlink('f', join(root, 'l'));
    const missing = join(root, 'missing');
    expect(await run({}, [join(root, 'f'), missing, join(root, 'l')])).toEqual([
      'file f',
      'symlink l',
      'error lstat missing ENOENT',
    ]);
  });

  it('resolves and dedupes sources, rejects nested ones', async () => {
    tree(['a/x', 'b/y']);
    const events = await run({}, [join(root, 'b'), join(root, 'a'), `${root}/a/../a`]);
    expect(events).toEqual(['enter a', 'file a/x', 'leave a', 'enter b', 'file b/y', 'leave b']);
    expect(() => walk([root, join(root, 'a')])).toThrow(WalkConfigError);
    expect(() => walk([join(root, 'a'), root])).toThrow(/inside source/);
  });

  it('skips children on skipChildren() and on next(true)', async () => {
    tree(['a/1', 'b/2', 'c/3']);
    const out: string[] = [];
    const gen = walk([root]);
    let r = await gen.next();
    while (!r.done) {
      const e = r.value;
      out.push(describeEvent(e));
      if (e.kind === 'enter' && rel(e.entry.pathBuf) === 'a') e.entry.skipChildren();
      r = await gen.next(e.kind === 'enter' && rel(e.entry.pathBuf) === 'b');
    }
    expect(out).toEqual([
      'enter .',
      'enter a',
      'leave a (skipped)',
      'enter b',
      'leave b (skipped)',
      'enter c',
      'file c/3',
      'leave c',
      'leave .',
    ]);
  });

  describe('excludes', () => {
    beforeEach(() => {
      tree([
        'keep.txt',
        'drop.log',
        'important.log',
        'foo',
        'sub/foo/',
        'sub/foo/inner',
        'sub/x.log',
        'build/out',
        'sub/build',
        'cache/',
        'cache/c',
      ]);
    });

    it('patterns, negation, dir-only and anchored patterns', async () => {
      const events = await run({ exclude: ['*.log', '!important.log', 'foo/', '/build', 'cache'] });
      expect(events).toEqual([
        'enter .',
        'file foo', // 'foo/' matches directories only
        'file important.log',
        'file keep.txt',
        'enter sub',
        'file sub/build', // '/build' is anchored at the source root
        'leave sub',
        'leave .',
      ]);
    });

    it('absolute paths inside a source are rebased onto it', async () => {
      const events = await run({ exclude: [join(root, 'sub'), `${join(root, 'build')}/`, '/cache', '*.log', '/elsewhere/x'] });
      expect(events).toEqual(['enter .', 'file foo', 'file keep.txt', 'leave .']);
      // An absolute exclude naming an ancestor of the source excludes it all.
      expect(await run({ exclude: [root] }, [join(root, 'sub')])).toEqual([]);
    });

    it('exclude files, and an unreadable exclude file throws', async () => {
      const f = join(root, '..', `${root.split('/').pop()}-excl`);
      await writeFile(f, '# comment\n\n*.log\r\nsub/\n');
      try {
        expect(await run({ excludeFiles: [f] })).toEqual([
          'enter .',
          'enter build',
          'file build/out',
          'leave build',
          'enter cache',
          'file cache/c',
          'leave cache',
          'file foo',
          'file keep.txt',
          'leave .',
        ]);
      } finally {
        await rm(f);
      }
      await expect(run({ excludeFiles: [join(root, 'nope')] })).rejects.toThrow(/cannot read exclude file .*nope/);
      // Not a regular file: refused before a byte is read (`/dev/zero` was read until the memory ran out).
      if (process.platform !== 'win32') {
        await expect(run({ excludeFiles: ['/dev/zero'] })).rejects.toThrow('walk: cannot read exclude file /dev/zero: it is a character device');
      }
    });

    it('.kiwiignore files apply below their directory, relative to it; deeper ones win', async () => {
      await writeFile(join(root, '.kiwiignore'), '*.log\nbuild\n');
      await writeFile(join(root, 'sub', '.kiwiignore'), '/foo\n!x.log\n');
      expect(await run()).toEqual([
        'enter .',
        'file .kiwiignore',
        'enter cache',
        'file cache/c',
        'leave cache',
        'file foo',
        'file keep.txt',
        'enter sub',
        'file sub/.kiwiignore',
        'file sub/x.log',
        'leave sub',
        'leave .',
      ]);
      // Renamed or disabled ignore files.
      const all = await run({ ignoreFileName: null });
      expect(all).toContain('file drop.log');
      expect(all).toContain('file sub/foo/inner');
    });

    it('a deeper .kiwiignore can re-include a directory an outer rule excludes', async () => {
      tree(['out/x', 'sub/out/deep/file']);
      await writeFile(join(root, '.kiwiignore'), 'out/\n');
      await writeFile(join(root, 'sub', '.kiwiignore'), '!out/\n');
      const events = await run();
      expect(events).not.toContain('enter out');
      expect(events).toContain('enter sub/out');
      expect(events).toContain('file sub/out/deep/file');
    });

    it('a .kiwiignore that is a fifo or symlink is never opened, even if swapped in after readdir', async () => {
      execFileSync('mkfifo', [join(root, 'sub', '.kiwiignore')]);
      await writeFile(join(root, 'patterns'), '*.log\n');
      await symlink('patterns', join(root, '.kiwiignore'));
      const events = await run();
      expect(events).toContain('fifo sub/.kiwiignore');
      expect(events).toContain('symlink .kiwiignore');
      expect(events).toContain('file drop.log');
      // readdir claims a regular file (swapped since): the open is non-blocking and the type re-checked.
      const { readdir: realReaddir } = await import('node:fs/promises');
      const fs: Partial<WalkFs> = {
        readdir: async (p) => {
          const list = await realReaddir(p, { encoding: 'buffer', withFileTypes: true });
          for (const d of list) if (d.name.toString() === '.kiwiignore') d.isFile = () => true;
          return list;
        },
      };
      const swapped = await run({ fs });
      expect(swapped).toContain('error readIgnore sub/.kiwiignore EINVAL');
      expect(swapped).toContain('error readIgnore .kiwiignore ELOOP');
      expect(swapped).toContain('file drop.log');
    });

    it('an unreadable .kiwiignore is an error event and the walk goes on', async () => {
      await writeFile(join(root, 'sub', '.kiwiignore'), 'x.log\n');
      const fs: Partial<WalkFs> = {
        readFile: async (p) => {
          throw Object.assign(new Error(`EACCES: permission denied, open '${p.toString()}'`), { code: 'EACCES' });
        },
      };
      const events = await run({ fs });
      expect(events).toContain('error readIgnore sub/.kiwiignore EACCES');
      expect(events).toContain('file sub/x.log');
    });
  });

  describe('failures', () => {
    const eacces = (p: Buffer) =>
      Object.assign(new Error(`EACCES: permission denied, scandir '${p.toString()}'`), { code: 'EACCES' });

    it('an unreadable directory is an error event between its enter and leave (injected)', async () => {
      tree(['a/secret', 'b']);
      const { readdir: realReaddir } = await import('node:fs/promises');
      const fs: Partial<WalkFs> = {
        readdir: async (p) => {
          if (p.toString().endsWith('/a')) throw eacces(p);
          return realReaddir(p, { encoding: 'buffer', withFileTypes: true });
        },
      };
      expect(await run({ fs })).toEqual([
        'enter .',
        'enter a',
        'error readdir a EACCES',
        'leave a (error)',
        'file b',
        'leave .',
      ]);
    });

    it.skipIf(process.getuid?.() === 0)('an unreadable directory (chmod 000, non-root only: root reads anyway)', async () => {
      tree(['a/secret', 'b']);
      await chmod(join(root, 'a'), 0o000);
      try {
        expect(await run()).toEqual([
          'enter .',
          'enter a',
          'error readdir a EACCES',
          'leave a (error)',
          'file b',
          'leave .',
        ]);
      } finally {
        await chmod(join(root, 'a'), 0o755);
      }
    });

    it('an entry that vanishes between readdir and lstat is an error event', async () => {
      tree(['a', 'gone', 'z']);
      const { lstat: realLstat } = await import('node:fs/promises');
      const fs: Partial<WalkFs> = {
        lstat: async (p) => {
          if (p.toString().endsWith('/gone')) await rm(p.toString());
          return realLstat(p, { bigint: true });
        },
      };
      expect(await run({ fs })).toEqual(['enter .', 'file a', 'error lstat gone ENOENT', 'file z', 'leave .']);
      expect(await readdir(root)).toEqual(['a', 'z']);
    });

    it('one-file-system: directories on another device are entered and left, not read', async () => {
      tree(['mnt/inner', 'local/f']);
      const { lstat: realLstat } = await import('node:fs/promises');
      const fs: Partial<WalkFs> = {
        lstat: async (p) => {
          const st = await realLstat(p, { bigint: true });
          if (p.toString().endsWith('/mnt')) Object.defineProperty(st, 'dev', { value: st.dev + 1n });
          return st;
        },
      };
      expect(await run({ fs, oneFileSystem: true })).toEqual([
        'enter .',
        'enter local',
        'file local/f',
        'leave local',
        'enter mnt',
        'leave mnt (other-fs)',
        'leave .',
      ]);
      expect(await run({ fs })).toContain('file mnt/inner');
    });

    it('an abort signal stops the walk', async () => {
      tree(['a', 'b', 'c']);
      const ac = new AbortController();
      const seen: string[] = [];
      await expect(
        (async () => {
          for await (const e of walk([root], { signal: ac.signal })) {
            seen.push(describeEvent(e));
            if (e.kind === 'entry') ac.abort(new Error('user abort'));
          }
        })(),
      ).rejects.toThrow('user abort');
      expect(seen).toEqual(['enter .', 'file a']);
    });
  });

  it('sync stat mode: vanished entries and unreadable directories are error events too', async () => {
    tree(['a/secret', 'b', 'gone', 'z']);
    const { lstatSync: realLstatSync, readdirSync: realReaddirSync } = await import('node:fs');
    const calls = { lstat: 0, readdir: 0 };
    const fs: Partial<WalkFs> = {
      lstatSync: (p) => {
        calls.lstat++;
        if (p.toString().endsWith('/gone')) throw Object.assign(new Error(`ENOENT: lstat '${p.toString()}'`), { code: 'ENOENT' });
        return realLstatSync(p, { bigint: true });
      },
      readdirSync: (p) => {
        calls.readdir++;
        if (p.toString().endsWith('/a')) throw eaccesSync(p);
        return realReaddirSync(p, { encoding: 'buffer', withFileTypes: true });
      },
    };
    const expected = ['enter .', 'enter a', 'error readdir a EACCES', 'leave a (error)', 'file b', 'error lstat gone ENOENT', 'file z', 'leave .'];
    expect(await run({ fs, statMode: 'sync' })).toEqual(expected);
    expect(calls).toEqual({ lstat: 5, readdir: 2 }); // root, a, b, gone, z
    // 'auto' on a warm cache uses the sync calls as well.
    expect(await run({ fs })).toEqual(expected);
    expect(calls.lstat).toBe(10);
  });

  it('walks a few thousand entries with exactly one lstat per entry', async () => {
    const dirs = 40;
    const files = 50;
    for (let d = 0; d < dirs; d++) {
      await mkdir(join(root, `d${d}`));
      await Promise.all(Array.from({ length: files }, (_, f) => writeFile(join(root, `d${d}`, `f${f}`), '')));
    }
    const { lstat: realLstat, readdir: realReaddir } = await import('node:fs/promises');
    let lstats = 0;
    let readdirs = 0;
    const fs: Partial<WalkFs> = {
      lstat: (p) => (lstats++, realLstat(p, { bigint: true })),
      readdir: (p) => (readdirs++, realReaddir(p, { encoding: 'buffer', withFileTypes: true })),
    };
    let n = 0;
    for await (const e of walk([root], { fs })) if (e.kind !== 'leave') n++;
    expect(n).toBe(1 + dirs + dirs * files);
    expect(lstats).toBe(n);
    expect(readdirs).toBe(dirs + 1);
    // Same in sync mode, and the same events.
    const { lstatSync, readdirSync } = await import('node:fs');
    const syncFs: Partial<WalkFs> = {
      lstatSync: (p) => (lstats++, lstatSync(p, { bigint: true })),
      readdirSync: (p) => (readdirs++, readdirSync(p, { encoding: 'buffer', withFileTypes: true })),
    };
    const a = await run({ fs, statMode: 'async', concurrency: 7 });
    lstats = 0;
    readdirs = 0;
    const b = await run({ fs: syncFs, statMode: 'sync' });
    expect(b).toEqual(a);
    expect(lstats).toBe(n);
    expect(readdirs).toBe(dirs + 1);
  });
});
