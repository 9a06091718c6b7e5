import { describeStorageConformance } from '@kiwi-backup/storage-testkit';
import { createMemoryStorage } from '../src/index.js';

describeStorageConformance('memory', {
  open: async () => createMemoryStorage(),
  options: { honorsMaxLength: true },
});
