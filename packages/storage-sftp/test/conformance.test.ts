import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describeStorageConformance } from '@kiwi-backup/storage-testkit';
import { describeWithServer } from '@kiwi-backup/test-servers';
import type { Storage } from '@kiwi-backup/core';
import { SSHD_INSTALL_HINT, haveSshd, openSftp, removeRepo, useSshd } from './helpers.js';

describeWithServer('OpenSSH sshd', haveSshd, SSHD_INSTALL_HINT, () => {
  const server = useSshd();
  const paths = new WeakMap<Storage, string>();
  describeStorageConformance('sftp (OpenSSH sshd on loopback)', {
    async open() {
      const { storage, options } = openSftp(server(), { onWarning: () => undefined });
      paths.set(storage, options.path);
      return storage;
    },
    async cleanup(storage) {
      const p = paths.get(storage);
      if (p) await removeRepo(p);
    },
    options: { honorsMaxLength: true },
    // A file put in place by hand on the server (which runs on this machine).
    async writeRaw(storage, path, data) {
      const file = join(paths.get(storage)!, ...path.split('/'));
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, data);
    },
  });
});
