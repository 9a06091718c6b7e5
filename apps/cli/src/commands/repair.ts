import { defineCommand } from 'citty';

/** `kiwi repair index | packs | snapshots`: each loaded only when used. */
export default defineCommand({
  meta: { name: 'repair', description: 'Repair a damaged repository: rebuild the index, salvage packs, rewrite snapshots around lost data' },
  subCommands: {
    index: () => import('./repair-index.js').then((m) => m.default),
    packs: () => import('./repair-packs.js').then((m) => m.default),
    snapshots: () => import('./repair-snapshots.js').then((m) => m.default),
  },
});
