/* Shared helpers of Kiwi's native file-system addon. */
#ifndef KIWI_NATIVE_FS_COMMON_H
#define KIWI_NATIVE_FS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* An Error like Node's fs errors: `code` (ENOENT...), `errno` (negative), `syscall`, `path` (may be NULL). */
napi_value kiwi_errno_error(napi_env env, int e, const char *syscall, const char *path);

/* Throws kiwi_errno_error; returns NULL for the caller to return. */
napi_value kiwi_throw_errno(napi_env env, int e, const char *syscall, const char *path);

/*
 * Copies a Buffer argument into a new NUL-terminated string (free() it). NULL with a pending
 * TypeError when it is not a Buffer, is empty, or holds a NUL byte. `what` names the argument.
 */
char *kiwi_buffer_string(napi_env env, napi_value v, const char *what, size_t *len_out);

/* A non-negative int32 descriptor, or -1 with a pending TypeError. */
int kiwi_get_fd(napi_env env, napi_value v);

/*
 * A time given as a BigInt of nanoseconds since the epoch, as a timespec (tv_nsec in 0…999,999,999,
 * rounded down). Any time whose seconds fit in 64 bits (the count of nanoseconds itself passes 64
 * bits after 2262-04-11). False with a pending TypeError (not a BigInt) or RangeError (out of range);
 * `what` names the argument.
 */
bool kiwi_get_time_ns(napi_env env, napi_value v, const char *what, struct timespec *ts);

/* Gets `want` arguments; false with a pending TypeError when fewer were passed. */
bool kiwi_get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);

/*
 * Queues `data` as a threadpool job named `name` (exec on a pool thread, complete on the main
 * thread, which settles *deferred and deletes *work). Returns its promise; when the work cannot be
 * queued the promise is already rejected and *queued is false (the caller frees `data`, as it
 * does when NULL is returned: no promise, an exception pending).
 */
napi_value kiwi_queue_job(napi_env env, const char *name, napi_async_execute_callback exec, napi_async_complete_callback complete, void *data,
                          napi_deferred *deferred, napi_async_work *work, bool *queued);

/* Extended attributes read by kiwi_xattrs_read (xattr.c; Linux and macOS). */
typedef struct {
  char *name; /* NUL-terminated */
  size_t name_len;
  uint8_t *value; /* NULL when not read */
  ssize_t value_len; /* >= 0: the value's length, or its size when over the limit (value NULL); < 0: -errno */
} kiwi_xattr;

typedef struct {
  kiwi_xattr *items;
  uint32_t count; /* items read (at most maxCount) */
  uint32_t total; /* attributes listed (more than count when capped) */
} kiwi_xattrs;

/*
 * Every attribute of `path`, never following a final symlink: values up to max_value bytes are
 * read, larger ones give their size; at most max_count are kept; a name list over max_list bytes
 * is E2BIG. Attributes removed while listing are left out. 0, or an errno value (nothing to free).
 */
int kiwi_xattrs_read(const char *path, size_t max_value, size_t max_count, size_t max_list, kiwi_xattrs *out);
void kiwi_xattrs_free(kiwi_xattrs *l);
/* As lgetxattrsSync returns them: [name, value | size | -errno, ...], `truncated` set when capped; NULL on failure. */
napi_value kiwi_xattrs_to_js(napi_env env, const kiwi_xattrs *l, size_t max_count);

/* Registration of each part's exports. */
void kiwi_register_times(napi_env env, napi_value exports);
void kiwi_register_xattr(napi_env env, napi_value exports);
void kiwi_register_nodes(napi_env env, napi_value exports);
void kiwi_register_files(napi_env env, napi_value exports);
void kiwi_register_aead(napi_env env, napi_value exports);
void kiwi_register_scan(napi_env env, napi_value exports);

#endif
