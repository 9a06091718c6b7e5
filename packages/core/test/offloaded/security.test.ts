/** The hostile-repository tests (bombs, lying headers and ids, malformed trees) once more, with every blob's crypto on the threadpool (offload-all.ts). */
import { offloadEverything } from './offload-all.js';

offloadEverything();

await import('../security/hostile-repository.test.js');
await import('../security/readers-go-on.test.js');
await import('../security/tree-validation.test.js');
await import('../restore/malformed-tree.test.js');
