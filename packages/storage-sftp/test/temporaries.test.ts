/**
 * removeTemporaries: the temporary files of saves a crash interrupted (`<name>~kiwi-tmp-<hex>`
 * beside their targets) are removed when old enough; newer ones and real files stay.
 */
import { existsSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { deterministicBytes, sha256Hex } from '@kiwi-backup/storage-testkit';
import { describeWithServer } from '@kiwi-backup/test-servers';
import { createSftpStorage } from '../src/index.js';
import { SSHD_INSTALL_HINT, haveSshd, sftpOptions, useSshd } from './helpers.js';

describeWithServer('OpenSSH sshd', haveSshd, SSHD_INSTALL_HINT, () => {
  const server = useSshd();

  it('removes the old temporary files of interrupted saves, keeps newer ones and every real file', async () => {
    const options = sftpOptions(server());
    const s = createSftpStorage(options);
    try {
      await s.create();
      const data = deterministicBytes(5000, 'kept');
      const id = sha256Hex(data);
      await s.save({ type: 'data', name: id }, data);
      await s.save({ type: 'snapshot', name: 'ab'.repeat(32) }, Buffer.from('snap'));
      // The repository directory is on this machine (the test server serves a local directory).
      const root = options.path!;
      const old = Date.now() / 1000 - 3600;
      const stale = [join(root, 'data', id.slice(0, 2), `${id}~kiwi-tmp-0123456789ab`), join(root, 'index', `${'cd'.repeat(32)}~kiwi-tmp-0123456789ab`)];
      for (const p of stale) {
        writeFileSync(p, Buffer.alloc(700));
        utimesSync(p, old, old);
      }
      const fresh = join(root, 'snapshots', `${'ef'.repeat(32)}~kiwi-tmp-0123456789ab`);
      writeFileSync(fresh, 'being written');
      expect(await s.removeTemporaries!(15 * 60 * 1000)).toEqual({ files: 2, bytes: 1400 });
      for (const p of stale) expect(existsSync(p), p).toBe(false);
      expect(existsSync(fresh)).toBe(true);
      expect(await s.load({ type: 'data', name: id })).toEqual(data);
      expect((await s.load({ type: 'snapshot', name: 'ab'.repeat(32) })).toString()).toBe('snap');
      expect(await s.removeTemporaries!(15 * 60 * 1000)).toEqual({ files: 0, bytes: 0 });
    } finally {
      await s.close();
    }
  });
});
