/*
 * Extended attributes (Linux, macOS), never following a final symlink.
 *
 *   lgetxattrsSync(path, maxValue, maxCount, maxListBytes) -> Array
 *       every attribute of `path` as a flat list [name, value, name, value, ...]: `name` a Buffer;
 *       `value` a Buffer, or a number: >= 0 the value's size when it is over `maxValue` (not read),
 *       < 0 a negated errno when reading it failed. Attributes removed while listing are left out.
 *       More than `maxCount` names: the first `maxCount`, and the array's `truncated` property
 *       holds the total. A name list over `maxListBytes` throws E2BIG.
 *   llistxattrSync(path) -> Buffer[]                     the names
 *   lsetxattrSync(path, name, value) / fsetxattrSync(fd, name, value)
 *   lremovexattrSync(path, name)
 * Errors: Node-style (code, errno, syscall, path); ENOTSUP/EOPNOTSUPP where the file system has none.
 * Elsewhere (no xattr API) every call throws ENOTSUP.
 */
#include "common.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/xattr.h>
#define KIWI_HAVE_XATTR 1
#define K_LIST(p, b, n) llistxattr((p), (b), (n))
#define K_GET(p, name, b, n) lgetxattr((p), (name), (b), (n))
#define K_SET(p, name, v, n) lsetxattr((p), (name), (v), (n), 0)
#define K_FSET(fd, name, v, n) fsetxattr((fd), (name), (v), (n), 0)
#define K_REMOVE(p, name) lremovexattr((p), (name))
#define K_NOATTR ENODATA
#elif defined(__APPLE__)
#include <sys/xattr.h>
#define KIWI_HAVE_XATTR 1
#define K_LIST(p, b, n) listxattr((p), (b), (n), XATTR_NOFOLLOW)
#define K_GET(p, name, b, n) getxattr((p), (name), (b), (n), 0, XATTR_NOFOLLOW)
#define K_SET(p, name, v, n) setxattr((p), (name), (v), (n), 0, XATTR_NOFOLLOW)
#define K_FSET(fd, name, v, n) fsetxattr((fd), (name), (v), (n), 0, 0)
#define K_REMOVE(p, name) removexattr((p), (name), XATTR_NOFOLLOW)
#define K_NOATTR ENOATTR
#else
#define KIWI_HAVE_XATTR 0
#endif

#ifndef ENOTSUP
#define ENOTSUP EOPNOTSUPP
#endif

/* Retries of a list or get whose size changed between the size query and the read (ERANGE). */
#define RACE_RETRIES 4

#if KIWI_HAVE_XATTR
/* Reads the NUL-separated name list into *out (NULL when there are none); 0, or an errno value. */
static int read_names(const char *path, size_t max_bytes, char **out, ssize_t *len) {
  *out = NULL;
  *len = 0;
  for (int attempt = 0; attempt < RACE_RETRIES; attempt++) {
    ssize_t n = K_LIST(path, NULL, 0);
    if (n < 0) return errno;
    if (n == 0) return 0;
    if ((size_t)n > max_bytes) return E2BIG;
    char *buf = malloc((size_t)n);
    if (!buf) return ENOMEM;
    ssize_t got = K_LIST(path, buf, (size_t)n);
    if (got > 0) {
      *out = buf;
      *len = got;
      return 0;
    }
    int e = got == 0 ? 0 : errno;
    free(buf);
    if (e != ERANGE) return e;
  }
  return ERANGE;
}

static bool get_double(napi_env env, napi_value v, const char *what, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok || !(*out >= 0)) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a non-negative number", what);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  return true;
}
#endif

#if !KIWI_HAVE_XATTR
static napi_value unsupported(napi_env env, const char *syscall) {
  return kiwi_throw_errno(env, ENOTSUP, syscall, NULL);
}
#endif

#if KIWI_HAVE_XATTR
/* Reads one attribute's value into x (see kiwi_xattr). False when it vanished meanwhile. */
static bool read_value(const char *path, kiwi_xattr *x, size_t max_value) {
  for (int attempt = 0; attempt < RACE_RETRIES; attempt++) {
    ssize_t size = K_GET(path, x->name, NULL, 0);
    if (size < 0) {
      if (errno == K_NOATTR) return false;
      x->value_len = -errno;
      return true;
    }
    if ((size_t)size > max_value) {
      x->value_len = size;
      return true;
    }
    uint8_t *v = malloc(size > 0 ? (size_t)size : 1);
    if (!v) {
      x->value_len = -ENOMEM;
      return true;
    }
    ssize_t got = size > 0 ? K_GET(path, x->name, v, (size_t)size) : 0;
    if (got >= 0) {
      /* (Shrunk between the two calls: the part read.) */
      x->value = v;
      x->value_len = got;
      return true;
    }
    int e = errno;
    free(v);
    if (e == K_NOATTR) return false;
    if (e != ERANGE) {
      x->value_len = -e;
      return true;
    }
  }
  x->value_len = -ERANGE;
  return true;
}

void kiwi_xattrs_free(kiwi_xattrs *l) {
  for (uint32_t k = 0; k < l->count; k++) {
    free(l->items[k].name);
    free(l->items[k].value);
  }
  free(l->items);
  memset(l, 0, sizeof *l);
}

int kiwi_xattrs_read(const char *path, size_t max_value, size_t max_count, size_t max_list, kiwi_xattrs *out) {
  memset(out, 0, sizeof *out);
  char *names;
  ssize_t len;
  int e = read_names(path, max_list, &names, &len);
  if (e != 0) return e;
  if (names == NULL) return 0;
  size_t listed = 0;
  for (ssize_t off = 0; off < len;) {
    size_t nlen = strnlen(names + off, (size_t)(len - off));
    if (nlen > 0) listed++;
    off += (ssize_t)nlen + 1;
  }
  size_t keep = listed < max_count ? listed : max_count;
  out->items = calloc(keep ? keep : 1, sizeof *out->items);
  if (!out->items) {
    free(names);
    return ENOMEM;
  }
  for (ssize_t off = 0; off < len;) {
    const char *name = names + off;
    size_t nlen = strnlen(name, (size_t)(len - off));
    off += (ssize_t)nlen + 1;
    if (nlen == 0) continue;
    out->total++;
    if (out->count >= keep) continue;
    kiwi_xattr *x = &out->items[out->count];
    x->name = strndup(name, nlen);
    if (!x->name) {
      free(names);
      kiwi_xattrs_free(out);
      return ENOMEM;
    }
    x->name_len = nlen;
    if (!read_value(path, x, max_value)) {
      free(x->name);
      memset(x, 0, sizeof *x);
      out->total--;
      continue;
    }
    out->count++;
  }
  free(names);
  return 0;
}

napi_value kiwi_xattrs_to_js(napi_env env, const kiwi_xattrs *l, size_t max_count) {
  napi_value list;
  if (napi_create_array_with_length(env, (size_t)l->count * 2, &list) != napi_ok) return NULL;
  uint32_t idx = 0;
  for (uint32_t k = 0; k < l->count; k++) {
    const kiwi_xattr *x = &l->items[k];
    napi_value jname, jvalue;
    void *dst;
    if (napi_create_buffer_copy(env, x->name_len, x->name, &dst, &jname) != napi_ok) return NULL;
    napi_status st;
    if (x->value != NULL) st = napi_create_buffer_copy(env, (size_t)x->value_len, x->value, &dst, &jvalue);
    else if (x->value_len >= 0) st = napi_create_double(env, (double)x->value_len, &jvalue);
    else st = napi_create_int32(env, (int32_t)x->value_len, &jvalue);
    if (st != napi_ok || napi_set_element(env, list, idx++, jname) != napi_ok || napi_set_element(env, list, idx++, jvalue) != napi_ok) return NULL;
  }
  if ((size_t)l->total > max_count) {
    napi_value t;
    napi_create_uint32(env, l->total, &t);
    napi_set_named_property(env, list, "truncated", t);
  }
  return list;
}
#endif

static napi_value lgetxattrs_sync(napi_env env, napi_callback_info info) {
#if KIWI_HAVE_XATTR
  napi_value argv[4];
  if (!kiwi_get_args(env, info, 4, argv)) return NULL;
  double max_value, max_count, max_list;
  if (!get_double(env, argv[1], "maxValue", &max_value) || !get_double(env, argv[2], "maxCount", &max_count) ||
      !get_double(env, argv[3], "maxListBytes", &max_list))
    return NULL;
  char *path = kiwi_buffer_string(env, argv[0], "path", NULL);
  if (!path) return NULL;
  kiwi_xattrs l;
  /* (The limits are non-negative doubles; past SIZE_MAX they mean "no limit".) */
  size_t mv = max_value >= (double)SIZE_MAX ? SIZE_MAX : (size_t)max_value;
  size_t mc = max_count >= (double)SIZE_MAX ? SIZE_MAX : (size_t)max_count;
  size_t ml = max_list >= (double)SIZE_MAX ? SIZE_MAX : (size_t)max_list;
  int e = kiwi_xattrs_read(path, mv, mc, ml, &l);
  if (e != 0) {
    napi_value err = kiwi_errno_error(env, e, "llistxattr", path);
    free(path);
    napi_throw(env, err);
    return NULL;
  }
  napi_value result = kiwi_xattrs_to_js(env, &l, mc);
  kiwi_xattrs_free(&l);
  free(path);
  if (result == NULL) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, NULL, "out of memory");
  }
  return result;
#else
  (void)info;
  return unsupported(env, "llistxattr");
#endif
}

static napi_value llistxattr_sync(napi_env env, napi_callback_info info) {
#if KIWI_HAVE_XATTR
  napi_value argv[1];
  if (!kiwi_get_args(env, info, 1, argv)) return NULL;
  char *path = kiwi_buffer_string(env, argv[0], "path", NULL);
  if (!path) return NULL;
  char *names;
  ssize_t len;
  int e = read_names(path, 16 * 1024 * 1024, &names, &len);
  if (e != 0) {
    napi_value err = kiwi_errno_error(env, e, "llistxattr", path);
    free(path);
    napi_throw(env, err);
    return NULL;
  }
  napi_value result;
  napi_create_array(env, &result);
  uint32_t idx = 0;
  for (ssize_t off = 0; names && off < len;) {
    const char *name = names + off;
    size_t nlen = strnlen(name, (size_t)(len - off));
    off += (ssize_t)nlen + 1;
    if (nlen == 0) continue;
    napi_value jname;
    void *dst;
    napi_create_buffer_copy(env, nlen, name, &dst, &jname);
    napi_set_element(env, result, idx++, jname);
  }
  free(names);
  free(path);
  return result;
#else
  (void)info;
  return unsupported(env, "llistxattr");
#endif
}

/* (target, name, value): target a path Buffer (is_fd false) or a descriptor. */
static napi_value set_common(napi_env env, napi_callback_info info, bool is_fd) {
#if KIWI_HAVE_XATTR
  napi_value argv[3];
  if (!kiwi_get_args(env, info, 3, argv)) return NULL;
  char *path = NULL;
  int fd = -1;
  if (is_fd) {
    fd = kiwi_get_fd(env, argv[0]);
    if (fd < 0) return NULL;
  } else {
    path = kiwi_buffer_string(env, argv[0], "path", NULL);
    if (!path) return NULL;
  }
  char *name = kiwi_buffer_string(env, argv[1], "name", NULL);
  if (!name) {
    free(path);
    return NULL;
  }
  bool isbuf = false;
  void *data = NULL;
  size_t len = 0;
  napi_is_buffer(env, argv[2], &isbuf);
  if (!isbuf || napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    free(path);
    free(name);
    napi_throw_type_error(env, NULL, "value must be a Buffer");
    return NULL;
  }
  int rc = is_fd ? K_FSET(fd, name, data, len) : K_SET(path, name, data, len);
  napi_value err = NULL;
  if (rc != 0) {
    char where[600];
    snprintf(where, sizeof where, "%s%s%s", path ? path : "", path ? " " : "", name);
    err = kiwi_errno_error(env, errno, is_fd ? "fsetxattr" : "lsetxattr", where);
  }
  free(path);
  free(name);
  if (err) napi_throw(env, err);
  return NULL;
#else
  (void)info;
  (void)is_fd;
  return unsupported(env, "lsetxattr");
#endif
}

static napi_value lsetxattr_sync(napi_env env, napi_callback_info info) { return set_common(env, info, false); }
static napi_value fsetxattr_sync(napi_env env, napi_callback_info info) { return set_common(env, info, true); }

static napi_value lremovexattr_sync(napi_env env, napi_callback_info info) {
#if KIWI_HAVE_XATTR
  napi_value argv[2];
  if (!kiwi_get_args(env, info, 2, argv)) return NULL;
  char *path = kiwi_buffer_string(env, argv[0], "path", NULL);
  if (!path) return NULL;
  char *name = kiwi_buffer_string(env, argv[1], "name", NULL);
  if (!name) {
    free(path);
    return NULL;
  }
  napi_value err = NULL;
  if (K_REMOVE(path, name) != 0) err = kiwi_errno_error(env, errno, "lremovexattr", path);
  free(path);
  free(name);
  if (err) napi_throw(env, err);
  return NULL;
#else
  (void)info;
  return unsupported(env, "lremovexattr");
#endif
}

void kiwi_register_xattr(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"lgetxattrsSync", NULL, lgetxattrs_sync, NULL, NULL, NULL, napi_enumerable, NULL},
    {"llistxattrSync", NULL, llistxattr_sync, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lsetxattrSync", NULL, lsetxattr_sync, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fsetxattrSync", NULL, fsetxattr_sync, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lremovexattrSync", NULL, lremovexattr_sync, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value b;
  napi_get_boolean(env, KIWI_HAVE_XATTR != 0, &b);
  napi_set_named_property(env, exports, "xattrSupported", b);
}
