/*
 * Whole files for Kiwi's restore, each written by one job on libuv's threadpool.
 *
 * Creating a file is the costly part of restoring many small ones (ext4 allocates an inode,
 * and looks over recently freed ones when it has no journal): made one at a time on the main
 * thread, a restore is serialized on it. Here each file is one job: several are created at
 * once (the pool has several threads) and the main thread pays one call per file, not five.
 *
 *   writeFile(tmp, final, data, mode, chmodMode, uid, gid, mtimeNs) -> Promise<void>
 *
 * open(tmp, O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode & 0777); pwrite all of `data`
 * (a Buffer, or null for an empty file) from the caller's memory, no copy; fchown(uid, gid)
 * when uid >= 0; fchmod(chmodMode) when chmodMode >= 0; futimens(atime = mtime = mtimeNs, a
 * BigInt of ns); close; rename(tmp, final). On any failure the temporary file is closed and
 * removed (never renamed) and the promise rejects with an fs-like error (`code`, `syscall`,
 * `path`). `data` must not change until the promise settles (the addon holds a reference).
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef O_NOFOLLOW
#define O_NOFOLLOW 0
#endif
#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

#define NS_PER_S 1000000000LL

typedef struct {
  char *tmp;
  char *final;
  const uint8_t *data;
  size_t length;
  napi_ref data_ref;
  int mode;
  int chmod_mode;
  int64_t uid;
  int64_t gid;
  struct timespec ts[2];
  int err;
  const char *syscall;
  bool err_on_final;
  napi_deferred deferred;
  napi_async_work work;
} wjob_t;

static void wjob_free(napi_env env, wjob_t *j) {
  if (!j) return;
  if (j->data_ref) napi_delete_reference(env, j->data_ref);
  free(j->tmp);
  free(j->final);
  free(j);
}

static void wjob_fail(wjob_t *j, const char *syscall) {
  j->err = errno;
  j->syscall = syscall;
}

static void wjob_run(wjob_t *j) {
  int fd;
  do fd = open(j->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)(j->mode & 0777));
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    wjob_fail(j, "open");
    return;
  }
  size_t off = 0;
  while (off < j->length) {
    ssize_t n = pwrite(fd, j->data + off, j->length - off, (off_t)off);
    if (n < 0) {
      if (errno == EINTR) continue;
      wjob_fail(j, "write");
      goto failed;
    }
    if (n == 0) {
      errno = EIO;
      wjob_fail(j, "write");
      goto failed;
    }
    off += (size_t)n;
  }
  if (j->uid >= 0 && fchown(fd, (uid_t)j->uid, (gid_t)j->gid) != 0) {
    wjob_fail(j, "fchown");
    goto failed;
  }
  if (j->chmod_mode >= 0 && fchmod(fd, (mode_t)j->chmod_mode) != 0) {
    wjob_fail(j, "fchmod");
    goto failed;
  }
  if (futimens(fd, j->ts) != 0) {
    wjob_fail(j, "futime");
    goto failed;
  }
  if (close(fd) != 0 && errno != EINTR) {
    fd = -1;
    wjob_fail(j, "close");
    goto failed;
  }
  fd = -1;
  if (rename(j->tmp, j->final) != 0) {
    wjob_fail(j, "rename");
    j->err_on_final = true;
    goto failed;
  }
  return;
failed:
  if (fd >= 0) close(fd);
  unlink(j->tmp);
}

static void exec_cb(napi_env env, void *data) {
  (void)env;
  wjob_run((wjob_t *)data);
}

static void complete_cb(napi_env env, napi_status status, void *data) {
  wjob_t *j = (wjob_t *)data;
  if (status != napi_ok) {
    napi_value msg, err;
    napi_create_string_utf8(env, "native-fs: async work was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, j->deferred, err);
  } else if (j->err) {
    napi_reject_deferred(env, j->deferred, kiwi_errno_error(env, j->err, j->syscall, j->err_on_final ? j->final : j->tmp));
  } else {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, j->deferred, undef);
  }
  napi_delete_async_work(env, j->work);
  wjob_free(env, j);
}

static bool get_int(napi_env env, napi_value v, const char *what, int64_t min, int64_t max, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < (double)min || d > (double)max || d != (double)(int64_t)d) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be an integer in %lld…%lld", what, (long long)min, (long long)max);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static napi_value write_file(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!kiwi_get_args(env, info, 8, argv)) return NULL;
  wjob_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->tmp = kiwi_buffer_string(env, argv[0], "tmp", NULL);
  if (!j->tmp) goto bad;
  j->final = kiwi_buffer_string(env, argv[1], "final", NULL);
  if (!j->final) goto bad;
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_null && t != napi_undefined) {
    bool isbuf = false;
    void *p;
    size_t len;
    napi_is_buffer(env, argv[2], &isbuf);
    if (!isbuf || napi_get_buffer_info(env, argv[2], &p, &len) != napi_ok) {
      napi_throw_type_error(env, NULL, "data must be a Buffer or null");
      goto bad;
    }
    j->data = (const uint8_t *)p;
    j->length = len;
    if (napi_create_reference(env, argv[2], 1, &j->data_ref) != napi_ok) {
      napi_throw_error(env, NULL, "native-fs: cannot hold the data");
      goto bad;
    }
  }
  int64_t mode, chmod_mode, uid, gid;
  if (!get_int(env, argv[3], "mode", 0, 07777, &mode) || !get_int(env, argv[4], "chmodMode", -1, 07777, &chmod_mode) ||
      !get_int(env, argv[5], "uid", -1, 0xfffffffeLL, &uid) || !get_int(env, argv[6], "gid", -1, 0xfffffffeLL, &gid))
    goto bad;
  j->mode = (int)mode;
  j->chmod_mode = (int)chmod_mode;
  j->uid = uid;
  j->gid = uid >= 0 ? gid : -1;
  if (uid >= 0 && gid < 0) {
    napi_throw_type_error(env, NULL, "gid must be given with uid");
    goto bad;
  }
  int64_t ns;
  bool lossless = false;
  if (napi_get_value_bigint_int64(env, argv[7], &ns, &lossless) != napi_ok || !lossless) {
    napi_throw_type_error(env, NULL, "mtimeNs must be a BigInt of nanoseconds in the 64-bit range");
    goto bad;
  }
  int64_t sec = ns / NS_PER_S, rem = ns % NS_PER_S;
  if (rem < 0) {
    rem += NS_PER_S;
    sec -= 1;
  }
  j->ts[0].tv_sec = j->ts[1].tv_sec = (time_t)sec;
  j->ts[0].tv_nsec = j->ts[1].tv_nsec = (long)rem;
  napi_value promise, name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    napi_throw_error(env, NULL, "native-fs: cannot create a promise");
    goto bad;
  }
  napi_create_string_utf8(env, "kiwi.writeFile", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, exec_cb, complete_cb, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    napi_throw_error(env, NULL, "native-fs: cannot queue async work");
    goto bad;
  }
  return promise;
bad:
  wjob_free(env, j);
  return NULL;
}

void kiwi_register_files(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"writeFile", NULL, write_file, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
