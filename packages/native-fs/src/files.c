/*
 * Whole files for Kiwi's restore, each written by one job on libuv's threadpool.
 *
 * Creating a file is the costly part of restoring many small ones (ext4 allocates an inode,
 * and looks over recently freed ones when it has no journal): made one at a time on the main
 * thread, a restore is serialized on it. Here each file is one job: several are created at
 * once (the pool has several threads) and the main thread pays one call per file, not five.
 *
 *   writeFile(tmp, final, data, mode, chmodMode, uid, gid, mtimeNs) -> Promise<void>
 *   writeFiles([[tmp, final, data, mode, chmodMode, uid, gid, mtimeNs], ...]) -> Promise<Array<Error | null>>
 *     (the files one after another in one job; one error or null per file, in order)
 *   writeFilesAt(dirFd, [[tmpName, finalName, ...], ...]) -> the same, with `tmpName` and `finalName`
 *     names in the directory open as `dirFd` (openat, renameat, unlinkat: no path is looked up;
 *     the caller keeps `dirFd` open until the promise settles)
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
} entry_t;

typedef struct {
  entry_t *entries;
  size_t count;
  int dirfd; /* AT_FDCWD, or writeFilesAt's directory */
  bool batch; /* writeFiles: resolves with a list of per-file errors */
  napi_deferred deferred;
  napi_async_work work;
} wjob_t;

static void entry_clear(napi_env env, entry_t *e) {
  if (e->data_ref) napi_delete_reference(env, e->data_ref);
  e->data_ref = NULL;
  free(e->tmp);
  free(e->final);
  e->tmp = e->final = NULL;
}

static void wjob_free(napi_env env, wjob_t *j) {
  if (!j) return;
  for (size_t i = 0; i < j->count; i++) entry_clear(env, &j->entries[i]);
  free(j->entries);
  free(j);
}

static void entry_fail(entry_t *e, const char *syscall) {
  e->err = errno;
  e->syscall = syscall;
}

static void entry_run(int dirfd, entry_t *e) {
  int fd;
  do fd = openat(dirfd, e->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)(e->mode & 0777));
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    entry_fail(e, "open");
    return;
  }
  size_t off = 0;
  while (off < e->length) {
    ssize_t n = pwrite(fd, e->data + off, e->length - off, (off_t)off);
    if (n < 0) {
      if (errno == EINTR) continue;
      entry_fail(e, "write");
      goto failed;
    }
    if (n == 0) {
      errno = EIO;
      entry_fail(e, "write");
      goto failed;
    }
    off += (size_t)n;
  }
  if (e->uid >= 0 && fchown(fd, (uid_t)e->uid, (gid_t)e->gid) != 0) {
    entry_fail(e, "fchown");
    goto failed;
  }
  if (e->chmod_mode >= 0 && fchmod(fd, (mode_t)e->chmod_mode) != 0) {
    entry_fail(e, "fchmod");
    goto failed;
  }
  if (futimens(fd, e->ts) != 0) {
    entry_fail(e, "futime");
    goto failed;
  }
  if (close(fd) != 0 && errno != EINTR) {
    fd = -1;
    entry_fail(e, "close");
    goto failed;
  }
  fd = -1;
  if (renameat(dirfd, e->tmp, dirfd, e->final) != 0) {
    entry_fail(e, "rename");
    e->err_on_final = true;
    goto failed;
  }
  return;
failed:
  if (fd >= 0) close(fd);
  unlinkat(dirfd, e->tmp, 0);
}

static void exec_cb(napi_env env, void *data) {
  (void)env;
  wjob_t *j = (wjob_t *)data;
  for (size_t i = 0; i < j->count; i++) entry_run(j->dirfd, &j->entries[i]);
}

static napi_value entry_error(napi_env env, entry_t *e) {
  return kiwi_errno_error(env, e->err, e->syscall, e->err_on_final ? e->final : e->tmp);
}

static void complete_cb(napi_env env, napi_status status, void *data) {
  wjob_t *j = (wjob_t *)data;
  if (status != napi_ok) {
    napi_value msg, err;
    napi_create_string_utf8(env, "native-fs: async work was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, j->deferred, err);
  } else if (!j->batch) {
    if (j->entries[0].err) napi_reject_deferred(env, j->deferred, entry_error(env, &j->entries[0]));
    else {
      napi_value undef;
      napi_get_undefined(env, &undef);
      napi_resolve_deferred(env, j->deferred, undef);
    }
  } else {
    napi_value list, nul;
    napi_get_null(env, &nul);
    napi_create_array_with_length(env, j->count, &list);
    for (size_t i = 0; i < j->count; i++) napi_set_element(env, list, (uint32_t)i, j->entries[i].err ? entry_error(env, &j->entries[i]) : nul);
    napi_resolve_deferred(env, j->deferred, list);
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

/* Parses (tmp, final, data, mode, chmodMode, uid, gid, mtimeNs) into `e`; false with a pending exception. */
static bool parse_entry(napi_env env, napi_value *argv, entry_t *e) {
  e->tmp = kiwi_buffer_string(env, argv[0], "tmp", NULL);
  if (!e->tmp) return false;
  e->final = kiwi_buffer_string(env, argv[1], "final", NULL);
  if (!e->final) return false;
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_null && t != napi_undefined) {
    bool isbuf = false;
    void *p;
    size_t len;
    napi_is_buffer(env, argv[2], &isbuf);
    if (!isbuf || napi_get_buffer_info(env, argv[2], &p, &len) != napi_ok) {
      napi_throw_type_error(env, NULL, "data must be a Buffer or null");
      return false;
    }
    e->data = (const uint8_t *)p;
    e->length = len;
    if (napi_create_reference(env, argv[2], 1, &e->data_ref) != napi_ok) {
      napi_throw_error(env, NULL, "native-fs: cannot hold the data");
      return false;
    }
  }
  int64_t mode, chmod_mode, uid, gid;
  if (!get_int(env, argv[3], "mode", 0, 07777, &mode) || !get_int(env, argv[4], "chmodMode", -1, 07777, &chmod_mode) ||
      !get_int(env, argv[5], "uid", -1, 0xfffffffeLL, &uid) || !get_int(env, argv[6], "gid", -1, 0xfffffffeLL, &gid))
    return false;
  if (uid >= 0 && gid < 0) {
    napi_throw_type_error(env, NULL, "gid must be given with uid");
    return false;
  }
  e->mode = (int)mode;
  e->chmod_mode = (int)chmod_mode;
  e->uid = uid;
  e->gid = uid >= 0 ? gid : -1;
  if (!kiwi_get_time_ns(env, argv[7], "mtimeNs", &e->ts[1])) return false;
  e->ts[0] = e->ts[1];
  return true;
}

static napi_value queue(napi_env env, wjob_t *j) {
  bool queued;
  napi_value promise = kiwi_queue_job(env, "kiwi.writeFile", exec_cb, complete_cb, j, &j->deferred, &j->work, &queued);
  if (!queued) wjob_free(env, j);
  return promise;
}

static wjob_t *new_job(napi_env env, size_t count, bool batch) {
  wjob_t *j = calloc(1, sizeof *j);
  entry_t *entries = calloc(count ? count : 1, sizeof *entries);
  if (!j || !entries) {
    free(j);
    free(entries);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->entries = entries;
  j->count = count;
  j->dirfd = AT_FDCWD;
  j->batch = batch;
  return j;
}

static napi_value write_file(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!kiwi_get_args(env, info, 8, argv)) return NULL;
  wjob_t *j = new_job(env, 1, false);
  if (!j) return NULL;
  if (!parse_entry(env, argv, &j->entries[0])) {
    wjob_free(env, j);
    return NULL;
  }
  return queue(env, j);
}

/* The files of writeFiles / writeFilesAt: one job, in order; `dirfd` AT_FDCWD or a directory descriptor. */
static napi_value files_job(napi_env env, napi_value files, int dirfd) {
  bool is_array = false;
  uint32_t count = 0;
  napi_is_array(env, files, &is_array);
  if (!is_array || napi_get_array_length(env, files, &count) != napi_ok || count == 0 || count > 65536) {
    napi_throw_type_error(env, NULL, "writeFiles takes a non-empty array of at most 65536 files");
    return NULL;
  }
  wjob_t *j = new_job(env, count, true);
  if (!j) return NULL;
  j->dirfd = dirfd;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item, fields[8];
    bool item_array = false;
    uint32_t n = 0;
    napi_get_element(env, files, i, &item);
    napi_is_array(env, item, &item_array);
    if (!item_array || napi_get_array_length(env, item, &n) != napi_ok || n != 8) {
      napi_throw_type_error(env, NULL, "each file must be [tmp, final, data, mode, chmodMode, uid, gid, mtimeNs]");
      wjob_free(env, j);
      return NULL;
    }
    for (uint32_t k = 0; k < 8; k++) napi_get_element(env, item, k, &fields[k]);
    if (!parse_entry(env, fields, &j->entries[i])) {
      wjob_free(env, j);
      return NULL;
    }
    if (dirfd != AT_FDCWD && (strchr(j->entries[i].tmp, '/') || strchr(j->entries[i].final, '/'))) {
      napi_throw_type_error(env, NULL, "writeFilesAt takes names (no '/') in its directory");
      wjob_free(env, j);
      return NULL;
    }
  }
  return queue(env, j);
}

static napi_value write_files(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!kiwi_get_args(env, info, 1, argv)) return NULL;
  return files_job(env, argv[0], AT_FDCWD);
}

static napi_value write_files_at(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!kiwi_get_args(env, info, 2, argv)) return NULL;
  int64_t dirfd;
  if (!get_int(env, argv[0], "dirFd", 0, 0x7fffffff, &dirfd)) return NULL;
  return files_job(env, argv[1], (int)dirfd);
}

void kiwi_register_files(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"writeFile", NULL, write_file, NULL, NULL, NULL, napi_enumerable, NULL},
    {"writeFiles", NULL, write_files, NULL, NULL, NULL, napi_enumerable, NULL},
    {"writeFilesAt", NULL, write_files_at, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
