/*
 * Kiwi's native file-system addon: what Node's `fs` cannot do.
 *   times.c  nanosecond-exact futimens/utimensat
 *   xattr.c  extended attributes (incl. POSIX ACLs, stored as system.posix_acl_* attributes)
 *   nodes.c  mknod (FIFOs, devices, sockets), SEEK_DATA/SEEK_HOLE
 *   files.c  whole restored files written in one threadpool job each
 *   aead.c   AES-256-GCM decryption and HMAC-SHA-256 of blobs on the threadpool (OpenSSL found at load time)
 *   scan.c   a directory of the backup walk (entries, lstat, link targets, xattrs) in one threadpool job
 * and here: exitNow(code), _exit(2) at once; mallocLimits(mmap, trim), glibc's malloc thresholds fixed.
 */
#include "common.h"
#include <stdlib.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/*
 * exitNow(code): ends the process with `code` at once, without exit handlers. process.exit() runs
 * libuv's clean-up, which joins the threadpool: a pool thread blocked in a system call (a read on a
 * hung NFS mount, a FIFO with no writer) keeps the process from ever exiting. Output written with
 * Node's synchronous stdout/stderr (files, pipes and terminals on Linux) is already out.
 */
static napi_value exit_now(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!kiwi_get_args(env, info, 1, argv)) return NULL;
  int32_t code = 1;
  if (napi_get_value_int32(env, argv[0], &code) != napi_ok || code < 0 || code > 255) {
    napi_throw_type_error(env, NULL, "exitNow takes an exit code (0..255)");
    return NULL;
  }
  _exit(code);
}

/*
 * mallocLimits(mmapThreshold, trimThreshold): fixes glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD
 * (true), or does nothing where malloc is not glibc's (false). glibc raises both by itself each time a
 * block it had mapped is freed (to its size, up to 32 MiB, and twice that): from then on, smaller blocks
 * come from the heap and freed memory stays in the process. Fixed values keep the resident memory near
 * what is in use.
 */
static napi_value malloc_limits(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!kiwi_get_args(env, info, 2, argv)) return NULL;
  int64_t mmap_threshold = 0, trim_threshold = 0;
  if (napi_get_value_int64(env, argv[0], &mmap_threshold) != napi_ok || napi_get_value_int64(env, argv[1], &trim_threshold) != napi_ok ||
      mmap_threshold <= 0 || mmap_threshold > (int64_t)32 * 1024 * 1024 || trim_threshold < 0 || trim_threshold > (int64_t)1024 * 1024 * 1024) {
    napi_throw_type_error(env, NULL, "mallocLimits takes an mmap threshold (1 byte to 32 MiB) and a trim threshold (0 to 1 GiB)");
    return NULL;
  }
  bool done = false;
#ifdef __GLIBC__
  done = mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, (int)trim_threshold) == 1;
#endif
  napi_value result;
  napi_get_boolean(env, done, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  kiwi_register_times(env, exports);
  kiwi_register_xattr(env, exports);
  kiwi_register_nodes(env, exports);
  kiwi_register_files(env, exports);
  kiwi_register_aead(env, exports);
  kiwi_register_scan(env, exports);
  napi_property_descriptor props[] = {
      {"exitNow", NULL, exit_now, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mallocLimits", NULL, malloc_limits, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
