#include "common.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

napi_value kiwi_errno_error(napi_env env, int e, const char *syscall, const char *path) {
  /* libuv's error codes are the negated errno values on Unix: uv_err_name knows every name. */
  const char *code = uv_err_name(-e);
  if (code == NULL || strncmp(code, "Unknown", 7) == 0) code = "EUNKNOWN";
  char msg[512];
  if (path) snprintf(msg, sizeof msg, "%s: %s, %s '%s'", code, strerror(e), syscall, path);
  else snprintf(msg, sizeof msg, "%s: %s, %s", code, strerror(e), syscall);
  napi_value jmsg, jcode, err, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode);
  napi_create_error(env, jcode, jmsg, &err);
  napi_create_int32(env, -e, &v);
  napi_set_named_property(env, err, "errno", v);
  napi_set_named_property(env, err, "code", jcode);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "syscall", v);
  if (path) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, err, "path", v);
  }
  return err;
}

napi_value kiwi_throw_errno(napi_env env, int e, const char *syscall, const char *path) {
  napi_throw(env, kiwi_errno_error(env, e, syscall, path));
  return NULL;
}

char *kiwi_buffer_string(napi_env env, napi_value v, const char *what, size_t *len_out) {
  bool isbuf = false;
  void *data;
  size_t len;
  char msg[128];
  napi_is_buffer(env, v, &isbuf);
  if (!isbuf || napi_get_buffer_info(env, v, &data, &len) != napi_ok) {
    snprintf(msg, sizeof msg, "%s must be a Buffer", what);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  if (len == 0 || memchr(data, 0, len) != NULL) {
    snprintf(msg, sizeof msg, "%s must be non-empty and contain no NUL bytes", what);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  memcpy(s, data, len);
  s[len] = 0;
  if (len_out) *len_out = len;
  return s;
}

int kiwi_get_fd(napi_env env, napi_value v) {
  int32_t fd;
  if (napi_get_value_int32(env, v, &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "fd must be a non-negative integer");
    return -1;
  }
  return fd;
}

bool kiwi_get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < want) {
    char msg[64];
    snprintf(msg, sizeof msg, "expected %zu arguments", want);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  return true;
}

napi_value kiwi_queue_job(napi_env env, const char *name, napi_async_execute_callback exec, napi_async_complete_callback complete, void *data,
                          napi_deferred *deferred, napi_async_work *work, bool *queued) {
  *queued = false;
  napi_value promise, jname;
  if (napi_create_promise(env, deferred, &promise) != napi_ok) {
    napi_throw_error(env, NULL, "native-fs: cannot create a promise");
    return NULL;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &jname);
  *work = NULL;
  if (napi_create_async_work(env, NULL, jname, exec, complete, data, work) != napi_ok) *work = NULL;
  if (*work != NULL && napi_queue_async_work(env, *work) == napi_ok) {
    *queued = true;
    return promise;
  }
  if (*work != NULL) napi_delete_async_work(env, *work);
  napi_value msg, err;
  napi_create_string_utf8(env, "native-fs: cannot queue async work", NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &err);
  napi_reject_deferred(env, *deferred, err);
  return promise;
}

bool kiwi_get_time_ns(napi_env env, napi_value v, const char *what, struct timespec *ts) {
  char msg[128];
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_bigint) {
    snprintf(msg, sizeof msg, "%s must be a BigInt (nanoseconds)", what);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  int sign = 0;
  size_t count = 2;
  uint64_t words[2] = {0, 0};
  /* With more than 2 words, count comes back larger than 2 and only the low 2 are written. */
  if (napi_get_value_bigint_words(env, v, &sign, &count, words) != napi_ok) {
    snprintf(msg, sizeof msg, "%s must be a BigInt (nanoseconds)", what);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  const unsigned __int128 ns_per_s = 1000000000u;
  unsigned __int128 mag = ((unsigned __int128)words[1] << 64) | words[0];
  unsigned __int128 sec = mag / ns_per_s;
  uint64_t rem = (uint64_t)(mag % ns_per_s);
  /* Negative: -(sec + rem/1e9) = -(sec + 1) + (1e9 - rem)/1e9 when rem > 0. */
  if (sign && rem > 0) {
    sec += 1;
    rem = 1000000000u - rem;
  }
  bool fits = count <= 2 && (sign ? sec <= (unsigned __int128)INT64_MAX + 1 : sec <= (unsigned __int128)INT64_MAX);
  if (!fits || sizeof(time_t) < 8) {
    snprintf(msg, sizeof msg, "%s is out of range (its seconds must fit in 64 bits)", what);
    napi_throw_range_error(env, NULL, msg);
    return false;
  }
  ts->tv_sec = sign ? (time_t)(-(int64_t)(sec - 1) - 1) : (time_t)sec;
  ts->tv_nsec = (long)rem;
  return true;
}
