/*
 * Special files and holes.
 *
 *   mknodSync(path, mode, dev)   mknod(2): `mode` with the file type bits (S_IFIFO, S_IFCHR, S_IFBLK,
 *                                S_IFSOCK) and the permission bits (the umask applies); `dev` a BigInt
 *                                (the device number as stat reports it; 0n for FIFOs and sockets).
 *   seekDataSync(fd, offset)     lseek(2) SEEK_DATA: the next byte of data at or after `offset`, or -1
 *   seekHoleSync(fd, offset)     lseek(2) SEEK_HOLE: the next hole at or after `offset` (the end of the
 *                                file counts as one), or -1 past the end. Offsets are numbers (< 2^53).
 *                                Where the system has no SEEK_DATA they throw ENOTSUP.
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static napi_value mknod_sync(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!kiwi_get_args(env, info, 3, argv)) return NULL;
  uint32_t mode;
  if (napi_get_value_uint32(env, argv[1], &mode) != napi_ok) {
    napi_throw_type_error(env, NULL, "mode must be a non-negative integer");
    return NULL;
  }
  uint64_t dev;
  bool lossless = false;
  if (napi_get_value_bigint_uint64(env, argv[2], &dev, &lossless) != napi_ok || !lossless) {
    napi_throw_type_error(env, NULL, "dev must be a BigInt in the 64-bit unsigned range");
    return NULL;
  }
  if ((dev_t)dev != dev) {
    napi_throw_range_error(env, NULL, "dev does not fit this system's dev_t");
    return NULL;
  }
  char *path = kiwi_buffer_string(env, argv[0], "path", NULL);
  if (!path) return NULL;
  napi_value err = NULL;
  if (mknod(path, (mode_t)mode, (dev_t)dev) != 0) err = kiwi_errno_error(env, errno, "mknod", path);
  free(path);
  if (err) napi_throw(env, err);
  return NULL;
}

static napi_value seek_common(napi_env env, napi_callback_info info, bool data) {
  napi_value argv[2];
  if (!kiwi_get_args(env, info, 2, argv)) return NULL;
  int fd = kiwi_get_fd(env, argv[0]);
  if (fd < 0) return NULL;
  int64_t off;
  if (napi_get_value_int64(env, argv[1], &off) != napi_ok || off < 0) {
    napi_throw_type_error(env, NULL, "offset must be a non-negative integer");
    return NULL;
  }
#if defined(SEEK_DATA) && defined(SEEK_HOLE)
  off_t r = lseek(fd, (off_t)off, data ? SEEK_DATA : SEEK_HOLE);
  napi_value out;
  if (r < 0) {
    if (errno == ENXIO) {
      napi_create_int32(env, -1, &out);
      return out;
    }
    return kiwi_throw_errno(env, errno, "lseek", NULL);
  }
  napi_create_int64(env, (int64_t)r, &out);
  return out;
#else
  (void)data;
  return kiwi_throw_errno(env, ENOTSUP, "lseek", NULL);
#endif
}

static napi_value seek_data_sync(napi_env env, napi_callback_info info) { return seek_common(env, info, true); }
static napi_value seek_hole_sync(napi_env env, napi_callback_info info) { return seek_common(env, info, false); }

void kiwi_register_nodes(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"mknodSync", NULL, mknod_sync, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seekDataSync", NULL, seek_data_sync, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seekHoleSync", NULL, seek_hole_sync, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
