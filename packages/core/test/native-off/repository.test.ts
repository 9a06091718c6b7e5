/** A round trip, blob reads and the damaged-repository tests once more with the addon's crypto off: Node's crypto for every message (native-off.ts). */
import { nodeCryptoOnly } from './native-off.js';

nodeCryptoOnly();

await import('../e2e-core/roundtrip.test.js');
await import('../repository/load-blobs.test.js');
await import('../integrity/damaged-repository.test.js');
