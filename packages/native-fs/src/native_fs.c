/*
 * Kiwi's native file-system addon: what Node's `fs` cannot do.
 *   times.c  nanosecond-exact futimens/utimensat
 *   xattr.c  extended attributes (incl. POSIX ACLs, stored as system.posix_acl_* attributes)
 *   nodes.c  mknod (FIFOs, devices, sockets), SEEK_DATA/SEEK_HOLE
 *   files.c  whole restored files written in one threadpool job each
 *   aead.c   AES-256-GCM decryption and HMAC-SHA-256 of blobs on the threadpool (OpenSSL found at load time)
 *   scan.c   a directory of the backup walk (entries, lstat, link targets, xattrs) in one threadpool job
 */
#include "common.h"

static napi_value init(napi_env env, napi_value exports) {
  kiwi_register_times(env, exports);
  kiwi_register_xattr(env, exports);
  kiwi_register_nodes(env, exports);
  kiwi_register_files(env, exports);
  kiwi_register_aead(env, exports);
  kiwi_register_scan(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
