/** The crypto tests once more as with KIWI_NATIVE_FS=off: Node's crypto for every message (native-off.ts). */
import { nativeOff } from './native-off.js';

nativeOff();

await import('../crypto/crypto.test.js');
await import('../crypto/offload.test.js');
await import('../crypto/native-sync.test.js');
