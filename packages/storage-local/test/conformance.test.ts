import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describeStorageConformance } from '@kiwi-backup/storage-testkit';
import { createLocalStorage } from '../src/index.js';

describeStorageConformance('local', {
  open: async () => createLocalStorage(join(await mkdtemp(join(tmpdir(), 'kiwi-local-conf-')), 'repo'), { onWarning: () => undefined }),
  cleanup: async (storage) => {
    await rm(join(storage.location, '..'), { recursive: true, force: true });
  },
  options: { honorsMaxLength: true },
  // A file put in place by hand, as `echo x > data/00/<name>` would.
  writeRaw: async (storage, path, data) => {
    const file = join(storage.location, ...path.split('/'));
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, data);
  },
});
