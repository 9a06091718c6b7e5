/** The blob-reading tests (loadBlobs, the cache, restore and its verification, a round trip) once more, with every blob's crypto on the threadpool (offload-all.ts). */
import { offloadEverything } from './offload-all.js';

offloadEverything();

await import('../repository/load-blobs.test.js');
await import('../cache/cache.test.js');
await import('../restore/verify.test.js');
await import('../restore/restore-safety.test.js');
await import('../restore/content-reader.test.js');
await import('../restore/batched-restore.test.js');
await import('../e2e-core/roundtrip.test.js');
