/*
 * Nanosecond-exact atime/mtime setting for Kiwi's restore.
 *
 * Node's futimes/lutimes take float seconds (a double), which loses the
 * sub-microsecond digits. These call futimens(2) and
 * utimensat(2, AT_SYMLINK_NOFOLLOW) with whole timespec values.
 *
 * Exports (times are BigInt nanoseconds since the epoch):
 *   futimensSync(fd, atimeNs, mtimeNs)
 *   futimens(fd, atimeNs, mtimeNs) -> Promise<void>    (runs on libuv's threadpool)
 *   lutimensSync(pathBuffer, atimeNs, mtimeNs)
 *   lutimens(pathBuffer, atimeNs, mtimeNs) -> Promise<void>
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>


typedef struct {
  bool is_path;
  int fd;
  char *path; /* NUL-terminated copy, owned */
  struct timespec ts[2];
  int err;
  napi_deferred deferred;
  napi_async_work work;
} job_t;

static void job_free(job_t *j) {
  if (!j) return;
  free(j->path);
  free(j);
}

static void job_run(job_t *j) {
  int rc = j->is_path ? utimensat(AT_FDCWD, j->path, j->ts, AT_SYMLINK_NOFOLLOW) : futimens(j->fd, j->ts);
  j->err = rc == 0 ? 0 : errno;
}

/* Parses (fd|path, atimeNs, mtimeNs) into a new job; NULL with a pending exception on bad arguments. */
static job_t *parse_args(napi_env env, napi_callback_info info, bool is_path) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "expected 3 arguments");
    return NULL;
  }
  job_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->is_path = is_path;
  if (is_path) {
    j->path = kiwi_buffer_string(env, argv[0], "path", NULL);
    if (!j->path) {
      job_free(j);
      return NULL;
    }
  } else {
    int fd = kiwi_get_fd(env, argv[0]);
    if (fd < 0) {
      job_free(j);
      return NULL;
    }
    j->fd = fd;
  }
  if (!kiwi_get_time_ns(env, argv[1], "atimeNs", &j->ts[0]) || !kiwi_get_time_ns(env, argv[2], "mtimeNs", &j->ts[1])) {
    job_free(j);
    return NULL;
  }
  return j;
}

static napi_value run_sync(napi_env env, napi_callback_info info, bool is_path) {
  job_t *j = parse_args(env, info, is_path);
  if (!j) return NULL;
  job_run(j);
  if (j->err) napi_throw(env, kiwi_errno_error(env, j->err, is_path ? "lutimes" : "futime", j->path));
  job_free(j);
  return NULL;
}

static void exec_cb(napi_env env, void *data) {
  (void)env;
  job_run((job_t *)data);
}

static void complete_cb(napi_env env, napi_status status, void *data) {
  job_t *j = (job_t *)data;
  if (status != napi_ok) {
    napi_value msg, err;
    napi_create_string_utf8(env, "native-fs: async work was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, j->deferred, err);
  } else if (j->err) {
    napi_reject_deferred(env, j->deferred, kiwi_errno_error(env, j->err, j->is_path ? "lutimes" : "futime", j->path));
  } else {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, j->deferred, undef);
  }
  napi_delete_async_work(env, j->work);
  job_free(j);
}

static napi_value run_async(napi_env env, napi_callback_info info, bool is_path) {
  job_t *j = parse_args(env, info, is_path);
  if (!j) return NULL;
  bool queued;
  napi_value promise = kiwi_queue_job(env, is_path ? "kiwi.lutimens" : "kiwi.futimens", exec_cb, complete_cb, j, &j->deferred, &j->work, &queued);
  if (!queued) job_free(j);
  return promise;
}

static napi_value futimens_sync(napi_env env, napi_callback_info info) { return run_sync(env, info, false); }
static napi_value lutimens_sync(napi_env env, napi_callback_info info) { return run_sync(env, info, true); }
static napi_value futimens_async(napi_env env, napi_callback_info info) { return run_async(env, info, false); }
static napi_value lutimens_async(napi_env env, napi_callback_info info) { return run_async(env, info, true); }

void kiwi_register_times(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"futimensSync", NULL, futimens_sync, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lutimensSync", NULL, lutimens_sync, NULL, NULL, NULL, napi_enumerable, NULL},
    {"futimens", NULL, futimens_async, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lutimens", NULL, lutimens_async, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
