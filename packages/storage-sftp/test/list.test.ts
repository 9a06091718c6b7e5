/**
 * list yields only what load reads: a pack outside its data/xx directory, names that are not valid
 * for the type, and symlinks (loops included) are skipped, with a warning for what looks like a
 * repository file, and never fail the listing.
 */
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FileType, Storage } from '@kiwi-backup/core';
import { deterministicBytes, sha256Hex } from '@kiwi-backup/storage-testkit';
import { describeWithServer } from '@kiwi-backup/test-servers';
import { createSftpStorage } from '../src/index.js';
import { SSHD_INSTALL_HINT, haveSshd, removeRepo, sftpOptions, useSshd } from './helpers.js';

async function listed(s: Storage, type: FileType): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const f of s.list(type)) {
    expect(out.has(f.name), `${f.name} listed twice`).toBe(false);
    out.set(f.name, f.size);
  }
  return out;
}

describeWithServer('OpenSSH sshd', haveSshd, SSHD_INSTALL_HINT, () => {
  const server = useSshd();

  it('skips misplaced packs, invalid names and symlink loops, warning once per entry', async () => {
    const warnings: string[] = [];
    const options = sftpOptions(server(), { onWarning: (m) => warnings.push(m) });
    const s = createSftpStorage(options);
    // The repository directory is on this machine (the test server serves a local directory).
    const root = options.path!;
    try {
      await s.create();
      const pack = deterministicBytes(5000, 'real pack');
      const id = sha256Hex(pack);
      await s.save({ type: 'data', name: id }, pack);
      const idx = deterministicBytes(100, 'index');
      await s.save({ type: 'index', name: sha256Hex(idx) }, idx);
      const wrong = id.startsWith('00') ? 'ff' : '00';
      // `echo x > data/00/<P>`, a moved pack, a pack at the top of data/, a foreign directory.
      writeFileSync(join(root, 'data', wrong, id), 'x\n');
      const moved = sha256Hex(deterministicBytes(3000, 'moved'));
      writeFileSync(join(root, 'data', moved.startsWith('00') ? 'ff' : '00', moved), 'moved');
      writeFileSync(join(root, 'data', moved), 'moved');
      mkdirSync(join(root, 'data', 'old'));
      // Names core refuses, a temporary file of a save, symlink loops under valid names.
      writeFileSync(join(root, 'index', 'a b'), 'x');
      writeFileSync(join(root, 'data', 'ab', 'ab'), 'x');
      writeFileSync(join(root, 'index', `${'cd'.repeat(32)}~kiwi-tmp-0123456789ab`), 'partial');
      symlinkSync('x', join(root, 'locks', 'x'));
      symlinkSync('ee'.repeat(32), join(root, 'data', 'ee', 'ee'.repeat(32)));
      rmSync(join(root, 'data', 'ef'), { recursive: true });
      symlinkSync('ef', join(root, 'data', 'ef'));

      expect(await listed(s, 'data')).toEqual(new Map([[id, 5000]]));
      expect(await listed(s, 'index')).toEqual(new Map([[sha256Hex(idx), 100]]));
      expect(await listed(s, 'lock')).toEqual(new Map());
      expect((await s.stat({ type: 'data', name: id })).size).toBe(5000);
      const loc = s.location;
      expect(warnings.sort()).toEqual(
        [
          `list data: skipped ${loc}/data/${wrong}/${id}: a pack of that name belongs in data/${id.slice(0, 2)}/, where it is loaded from`,
          `list data: skipped ${loc}/data/${moved.startsWith('00') ? 'ff' : '00'}/${moved}: a pack of that name belongs in data/${moved.slice(0, 2)}/, where it is loaded from`,
          `list data: skipped ${loc}/data/${moved}: not a pack directory (data/00 … data/ff)`,
          `list data: skipped ${loc}/data/old: not a pack directory (data/00 … data/ff)`,
          `list data: skipped ${loc}/data/ef: not a pack directory (data/00 … data/ff)`,
          `list data: skipped ${loc}/data/ab/ab: not a pack file name (64 lowercase hex digits)`,
          `list index: skipped ${loc}/index/a b: not a valid index file name`,
        ].sort(),
      );
      // Once per entry, however often it lists.
      await listed(s, 'data');
      await listed(s, 'index');
      expect(warnings).toHaveLength(7);
    } finally {
      await s.close();
      await removeRepo(root);
    }
  });
});
