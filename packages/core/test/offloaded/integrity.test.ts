/** The integrity and tamper tests (damaged packs and trees, repair, check, prune) once more, with every blob's crypto on the threadpool (offload-all.ts). */
import { offloadEverything } from './offload-all.js';

offloadEverything();

await import('../integrity/damaged-repository.test.js');
await import('../integrity/repair.test.js');
await import('../maintenance/check-subset.test.js');
await import('../maintenance/prune.test.js');
