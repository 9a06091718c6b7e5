import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeStorageConformance } from '@kiwi-backup/storage-testkit';
import { createLocalStorage } from '../src/index.js';

describeStorageConformance('local', {
  open: async () => createLocalStorage(join(await mkdtemp(join(tmpdir(), 'kiwi-local-conf-')), 'repo')),
  cleanup: async (storage) => {
    await rm(join(storage.location, '..'), { recursive: true, force: true });
  },
});
