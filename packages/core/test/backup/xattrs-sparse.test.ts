import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { listTree, runBackup, type Node } from '../../src/index.js';
import { xattrsAvailable } from '../../src/xattr/xattrs.js';
import { nativeFs } from '../../src/native/native-fs.js';
import { memoryRepository } from './helpers/real-repo.js';
import { removeDir, tempDir } from './helpers/fs-tree.js';

const linux = process.platform === 'linux';
const haveXattrs = xattrsAvailable();
if (!haveXattrs && process.env.CI !== 'true') console.warn('\n*** @kiwi-backup/native-fs is not built: extended attribute tests skipped. ***\n');
const hasTool = (t: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

async function nodesOf(repo: Awaited<ReturnType<typeof memoryRepository>>['repo'], snapshot: Parameters<typeof listTree>[1]): Promise<Map<string, Node>> {
  const out = new Map<string, Node>();
  for await (const { path, node } of listTree(repo, snapshot)) out.set(path, node);
  return out;
}

describe.runIf(linux && (haveXattrs || process.env.CI === 'true'))('backup: extended attributes', () => {
  it('are recorded per entry, sorted, base64, with the snapshot flag; a changed attribute is read again', async () => {
    const nfs = nativeFs()!;
    const src = join(work, 'src');
    await mkdir(join(src, 'dir'), { recursive: true });
    await writeFile(join(src, 'f'), 'content');
    await writeFile(join(src, 'plain'), 'no attributes');
    nfs.lsetxattrSync(Buffer.from(join(src, 'f')), Buffer.from('user.zeta'), Buffer.from([0, 255, 1]));
    nfs.lsetxattrSync(Buffer.from(join(src, 'f')), Buffer.from('user.alpha'), Buffer.from('first'));
    nfs.lsetxattrSync(Buffer.from(join(src, 'dir')), Buffer.from('user.on-dir'), Buffer.alloc(0));
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    expect(res.snapshot!.xattrs).toBe(true);
    let nodes = await nodesOf(repo, res.snapshot!);
    expect(nodes.get(join(src, 'f'))!.xattrs).toEqual([
      { name: 'user.alpha', value: Buffer.from('first').toString('base64') },
      { name: 'user.zeta', value: 'AP8B' },
    ]);
    expect(nodes.get(join(src, 'dir'))!.xattrs).toEqual([{ name: 'user.on-dir', value: '' }]);
    expect(nodes.get(join(src, 'plain'))!.xattrs).toBeUndefined();

    // The content is unchanged, an attribute is not: the second backup records the new value.
    nfs.lsetxattrSync(Buffer.from(join(src, 'f')), Buffer.from('user.alpha'), Buffer.from('second'));
    const res2 = await runBackup({ repository: repo, sources: [src] });
    nodes = await nodesOf(repo, res2.snapshot!);
    expect(nodes.get(join(src, 'f'))!.xattrs![0]).toEqual({ name: 'user.alpha', value: Buffer.from('second').toString('base64') });
    // Unchanged files keep theirs (taken over from the parent node).
    const res3 = await runBackup({ repository: repo, sources: [src] });
    expect(res3.stats.filesUnmodified).toBe(2);
    nodes = await nodesOf(repo, res3.snapshot!);
    expect(nodes.get(join(src, 'f'))!.xattrs!.map((x) => x.name)).toEqual(['user.alpha', 'user.zeta']);
    await repo.close();
  });

  it.runIf(hasTool('setfacl'))('POSIX ACLs come as system.posix_acl_* attributes', async () => {
    const src = join(work, 'src');
    await mkdir(join(src, 'd'), { recursive: true });
    execFileSync('setfacl', ['-m', 'u:nobody:r-x', '-d', '-m', 'u:nobody:rwx', join(src, 'd')]);
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    const nodes = await nodesOf(repo, res.snapshot!);
    expect(nodes.get(join(src, 'd'))!.xattrs!.map((x) => x.name)).toEqual(['system.posix_acl_access', 'system.posix_acl_default']);
    await repo.close();
  });
});

describe.runIf(linux)('backup: sparse files', () => {
  it('a file with holes is marked sparse; a file of written zeros and a small file are not', async () => {
    const src = join(work, 'src');
    await mkdir(src);
    const fh = await open(join(src, 'holes'), 'w');
    await fh.truncate(8 * 1024 * 1024);
    await fh.write(Buffer.alloc(4096, 1), 0, 4096, 1024 * 1024);
    await fh.close();
    await writeFile(join(src, 'zeros'), Buffer.alloc(256 * 1024));
    await writeFile(join(src, 'small'), 'x');
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    const nodes = await nodesOf(repo, res.snapshot!);
    expect(nodes.get(join(src, 'holes'))!.sparse).toBe(true);
    expect(nodes.get(join(src, 'zeros'))!.sparse).toBeUndefined();
    expect(nodes.get(join(src, 'small'))!.sparse).toBeUndefined();
    await repo.close();
  });
});
