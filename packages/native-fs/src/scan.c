/*
 * One directory of a backup's walk, read in one job on libuv's threadpool (Linux only).
 *
 * A backup of many small files spends most of its main thread in system calls made one entry at
 * a time: readdir, lstat, readlink and the extended-attribute list, each walking the whole path
 * again. Here one job reads the directory, lstat's every entry relative to the directory's
 * descriptor (fstatat), reads symlink targets (readlinkat) and, when asked, extended attributes;
 * the main thread gets the listing in one piece, and several directories can be read at once.
 *
 *   scanDirs([path, ...], flags, maxValue, maxCount, maxListBytes) -> Promise<Array<listing | Error>>
 *     listing = { count, names, ints, stats, xattrs, dev, ino }
 *
 * Several directories go in one job: on a VM, handing a job to the pool and getting its answer
 * back costs the main thread tens of µs (two cross-thread wake-ups), more than reading a small
 * directory. The directories are read one after another; each gets its listing or its own error.
 * The directory is opened with O_NOFOLLOW (a directory swapped for a symlink after it was lstat'ed
 * is an error, ELOOP, never followed). `dev` and `ino` (BigInts, signed 64-bit as in `stats`) are those of the directory actually
 * opened (fstat of its descriptor): a directory above it may have been swapped for a symlink, which
 * O_NOFOLLOW does not see, so the caller compares them with what it listed. Entries `.` and `..` are left out; order is the kernel's.
 * Per entry i:
 *   ints[6i ..]  = name offset, name length (bytes in `names`), lstat error (0 or -errno),
 *                  link offset, link length (-1 not read; < -1: -errno of readlinkat), xattr state
 *                  (0 not read, 1 read: none, 2 read: see `xattrs`, < 0: -errno of llistxattr)
 *   stats[16i ..] = dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks,
 *                  atime s, atime ns, mtime s, mtime ns, ctime s, ctime ns (BigInt64Array)
 *   names: a Buffer with every name and link target.
 *   xattrs: [entry index, flat list, ...] for entries with state 2; the flat list is as
 *           lgetxattrsSync's: [name, value | size over maxValue | -errno, ...] with `truncated`.
 * flags: 1 read xattrs of regular files, 2 of everything else; 4 read symlink targets; 8 name each
 *        entry for the xattr calls as /proc/self/fd/<the directory's descriptor>/<name> instead of
 *        <path>/<name>: the calls then reach the entry in the directory read, even if a directory
 *        above it is swapped for a symlink meanwhile (a little slower: the caller asks for it where
 *        others can write). `scanXattrsAt` on the exports says the addon knows this flag.
 *   scanDirSync(path, flags, maxValue, maxCount, maxListBytes) -> listing   (throws when it cannot be read)
 *     the same on the calling thread: with a warm cache, cheaper than any hand-over to the pool.
 *
 * A directory that cannot be read gets an Error (code, errno, syscall 'scandir', path) in its place.
 * The promise rejects only when the job could not run (or, out of memory, building the answer).
 */
#include "common.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCAN_XATTR_FILES 1
#define SCAN_XATTR_OTHER 2
#define SCAN_LINKS 4
#define SCAN_XATTRS_AT 8
#define INTS 6
#define STATS 16
/* Symlink targets are at most PATH_MAX on Linux; a longer answer is an error, not an allocation. */
#define LINK_MAX_BYTES 65536
#define RACE_RETRIES 4

typedef struct {
  uint32_t name_off, name_len;
  int32_t lstat_err;
  int32_t link_off, link_len;
  int32_t xattr_state;
  struct stat st;
  kiwi_xattrs xattrs;
} sentry_t;

typedef struct {
  char *path;
  size_t path_len;
  int flags;
  size_t max_value, max_count, max_list;
  /* output */
  int err;
  /* The directory actually opened (fstat of its descriptor): the caller checks it is the one it listed. */
  dev_t dir_dev;
  ino_t dir_ino;
  const char *syscall;
  char *bytes; /* names and link targets */
  size_t bytes_len, bytes_cap;
  sentry_t *entries;
  size_t count, cap;
} scan_t;

typedef struct {
  scan_t *scans;
  size_t n;
  napi_deferred deferred;
  napi_async_work work;
} sjob_t;

static void entries_free(scan_t *s) {
  for (size_t i = 0; i < s->count; i++) {
    kiwi_xattrs_free(&s->entries[i].xattrs);
  }
  free(s->entries);
  s->entries = NULL;
  s->count = s->cap = 0;
}

static void scan_clear(scan_t *s) {
  entries_free(s);
  free(s->bytes);
  free(s->path);
  s->bytes = NULL;
  s->path = NULL;
}

static void sjob_free(sjob_t *j) {
  if (!j) return;
  for (size_t i = 0; i < j->n; i++) scan_clear(&j->scans[i]);
  free(j->scans);
  free(j);
}

/* Appends bytes to s->bytes; its offset, or -1 when out of memory (or past 2 GiB). */
static int64_t bytes_add(scan_t *s, const char *p, size_t n) {
  if (s->bytes_len + n > INT32_MAX) return -1;
  if (s->bytes_len + n > s->bytes_cap) {
    size_t cap = s->bytes_cap ? s->bytes_cap * 2 : 4096;
    while (cap < s->bytes_len + n) cap *= 2;
    char *b = realloc(s->bytes, cap);
    if (!b) return -1;
    s->bytes = b;
    s->bytes_cap = cap;
  }
  memcpy(s->bytes + s->bytes_len, p, n);
  int64_t off = (int64_t)s->bytes_len;
  s->bytes_len += n;
  return off;
}

static void read_link(scan_t *s, int dfd, const char *name, sentry_t *e) {
  size_t size = e->st.st_size > 0 && e->st.st_size < LINK_MAX_BYTES ? (size_t)e->st.st_size + 1 : 256;
  for (;;) {
    char *buf = malloc(size);
    if (!buf) {
      e->link_len = -ENOMEM;
      return;
    }
    ssize_t n = readlinkat(dfd, name, buf, size);
    if (n < 0) {
      e->link_len = -errno;
      free(buf);
      return;
    }
    if ((size_t)n < size) {
      int64_t off = bytes_add(s, buf, (size_t)n);
      free(buf);
      if (off < 0) e->link_len = -ENOMEM;
      else {
        e->link_off = (int32_t)off;
        e->link_len = (int32_t)n;
      }
      return;
    }
    free(buf);
    if (size >= LINK_MAX_BYTES) {
      e->link_len = -ENAMETOOLONG;
      return;
    }
    size *= 2;
  }
}

/* The attributes of `path` (never following a symlink) into e; sets e->xattr_state. */
static void read_xattrs(scan_t *s, const char *path, sentry_t *e) {
  int err = kiwi_xattrs_read(path, s->max_value, s->max_count, s->max_list, &e->xattrs);
  e->xattr_state = err != 0 ? -err : e->xattrs.total > 0 ? 2 : 1;
}

static void scan_run(scan_t *s) {
  int fd;
  do fd = open(s->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    s->err = errno;
    s->syscall = "scandir";
    return;
  }
  struct stat dst;
  if (fstat(fd, &dst) != 0) {
    s->err = errno;
    s->syscall = "scandir";
    close(fd);
    return;
  }
  s->dir_dev = dst.st_dev;
  s->dir_ino = dst.st_ino;
  DIR *dir = fdopendir(fd);
  if (!dir) {
    s->err = errno;
    s->syscall = "scandir";
    close(fd);
    return;
  }
  /* The path of an entry, for the xattr calls (which have no *at form before Linux 6.13). */
  char *child = NULL;
  size_t child_cap = 0;
  for (;;) {
    errno = 0;
    struct dirent *d = readdir(dir);
    if (!d) {
      if (errno != 0) {
        s->err = errno;
        s->syscall = "scandir";
      }
      break;
    }
    const char *name = d->d_name;
    if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
    size_t nlen = strlen(name);
    if (s->count == s->cap) {
      size_t cap = s->cap ? s->cap * 2 : 64;
      sentry_t *grown = realloc(s->entries, cap * sizeof *grown);
      if (!grown) {
        s->err = ENOMEM;
        s->syscall = "scandir";
        break;
      }
      s->entries = grown;
      s->cap = cap;
    }
    sentry_t *e = &s->entries[s->count];
    memset(e, 0, sizeof *e);
    e->link_len = -1;
    int64_t off = bytes_add(s, name, nlen);
    if (off < 0) {
      s->err = ENOMEM;
      s->syscall = "scandir";
      break;
    }
    s->count++;
    e->name_off = (uint32_t)off;
    e->name_len = (uint32_t)nlen;
    if (fstatat(fd, name, &e->st, AT_SYMLINK_NOFOLLOW) != 0) {
      e->lstat_err = -errno;
      continue;
    }
    bool is_link = S_ISLNK(e->st.st_mode);
    if (is_link && (s->flags & SCAN_LINKS)) read_link(s, fd, name, e);
    int want = S_ISREG(e->st.st_mode) ? SCAN_XATTR_FILES : SCAN_XATTR_OTHER;
    if (s->flags & want) {
      char fd_dir[40];
      const char *dir_path = s->path;
      size_t dir_len = s->path_len;
      if (s->flags & SCAN_XATTRS_AT) {
        int n = snprintf(fd_dir, sizeof fd_dir, "/proc/self/fd/%d", fd);
        dir_path = fd_dir;
        dir_len = (size_t)n;
      }
      size_t need = dir_len + 1 + nlen + 1;
      if (need > child_cap) {
        char *c = realloc(child, need);
        if (!c) {
          e->xattr_state = -ENOMEM;
          continue;
        }
        child = c;
        child_cap = need;
      }
      memcpy(child, dir_path, dir_len);
      size_t p = dir_len;
      if (p == 0 || child[p - 1] != '/') child[p++] = '/';
      memcpy(child + p, name, nlen + 1);
      read_xattrs(s, child, e);
    }
  }
  free(child);
  closedir(dir);
}

static void exec_cb(napi_env env, void *data) {
  (void)env;
  sjob_t *j = (sjob_t *)data;
  for (size_t i = 0; i < j->n; i++) scan_run(&j->scans[i]);
}

static napi_value cancelled(napi_env env, const char *what) {
  napi_value msg, err;
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &err);
  return err;
}

/* The listing as JS values (on the main thread); NULL with `*err` set when out of memory. */
static napi_value make_result(napi_env env, scan_t *s) {
  size_t n = s->count;
  napi_value result, v, ints_ab, stats_ab, ints, stats, names, xattrs;
  void *ip, *sp, *np;
  if (napi_create_object(env, &result) != napi_ok) return NULL;
  if (napi_create_arraybuffer(env, (n ? n : 1) * INTS * sizeof(int32_t), &ip, &ints_ab) != napi_ok) return NULL;
  if (napi_create_arraybuffer(env, (n ? n : 1) * STATS * sizeof(int64_t), &sp, &stats_ab) != napi_ok) return NULL;
  if (napi_create_typedarray(env, napi_int32_array, n * INTS, ints_ab, 0, &ints) != napi_ok) return NULL;
  if (napi_create_typedarray(env, napi_bigint64_array, n * STATS, stats_ab, 0, &stats) != napi_ok) return NULL;
  if (napi_create_buffer_copy(env, s->bytes_len, s->bytes_len ? s->bytes : "", &np, &names) != napi_ok) return NULL;
  if (napi_create_array(env, &xattrs) != napi_ok) return NULL;
  int32_t *I = (int32_t *)ip;
  int64_t *S = (int64_t *)sp;
  uint32_t xi = 0;
  for (size_t i = 0; i < n; i++) {
    const sentry_t *e = &s->entries[i];
    int32_t *r = I + i * INTS;
    r[0] = (int32_t)e->name_off;
    r[1] = (int32_t)e->name_len;
    r[2] = e->lstat_err;
    r[3] = e->link_off;
    r[4] = e->link_len;
    r[5] = e->xattr_state;
    int64_t *t = S + i * STATS;
    if (e->lstat_err != 0) {
      memset(t, 0, STATS * sizeof *t);
      continue;
    }
    const struct stat *st = &e->st;
    t[0] = (int64_t)st->st_dev;
    t[1] = (int64_t)st->st_ino;
    t[2] = (int64_t)st->st_mode;
    t[3] = (int64_t)st->st_nlink;
    t[4] = (int64_t)st->st_uid;
    t[5] = (int64_t)st->st_gid;
    t[6] = (int64_t)st->st_rdev;
    t[7] = (int64_t)st->st_size;
    t[8] = (int64_t)st->st_blksize;
    t[9] = (int64_t)st->st_blocks;
    t[10] = (int64_t)st->st_atim.tv_sec;
    t[11] = (int64_t)st->st_atim.tv_nsec;
    t[12] = (int64_t)st->st_mtim.tv_sec;
    t[13] = (int64_t)st->st_mtim.tv_nsec;
    t[14] = (int64_t)st->st_ctim.tv_sec;
    t[15] = (int64_t)st->st_ctim.tv_nsec;
    if (e->xattr_state == 2) {
      napi_value list = kiwi_xattrs_to_js(env, &e->xattrs, s->max_count);
      if (list == NULL) return NULL;
      napi_create_uint32(env, (uint32_t)i, &v);
      napi_set_element(env, xattrs, xi++, v);
      napi_set_element(env, xattrs, xi++, list);
    }
  }
  napi_create_uint32(env, (uint32_t)n, &v);
  napi_set_named_property(env, result, "count", v);
  if (napi_create_bigint_int64(env, (int64_t)s->dir_dev, &v) != napi_ok) return NULL;
  napi_set_named_property(env, result, "dev", v);
  if (napi_create_bigint_int64(env, (int64_t)s->dir_ino, &v) != napi_ok) return NULL;
  napi_set_named_property(env, result, "ino", v);
  napi_set_named_property(env, result, "names", names);
  napi_set_named_property(env, result, "ints", ints);
  napi_set_named_property(env, result, "stats", stats);
  napi_set_named_property(env, result, "xattrs", xattrs);
  return result;
}

/* A pending exception (a failed N-API call leaves one) or an out-of-memory error, cleared. */
static napi_value take_exception(napi_env env, const char *path) {
  bool pending = false;
  napi_value exc;
  napi_is_exception_pending(env, &pending);
  if (pending && napi_get_and_clear_last_exception(env, &exc) == napi_ok) return exc;
  return kiwi_errno_error(env, ENOMEM, "scandir", path);
}

static void complete_cb(napi_env env, napi_status status, void *data) {
  sjob_t *j = (sjob_t *)data;
  napi_value list;
  if (status != napi_ok) {
    napi_reject_deferred(env, j->deferred, cancelled(env, "native-fs: scanDirs was cancelled"));
  } else if (napi_create_array_with_length(env, j->n, &list) != napi_ok) {
    napi_reject_deferred(env, j->deferred, take_exception(env, NULL));
  } else {
    bool failed = false;
    for (size_t i = 0; i < j->n && !failed; i++) {
      scan_t *s = &j->scans[i];
      napi_value v = s->err != 0 ? kiwi_errno_error(env, s->err, s->syscall, s->path) : make_result(env, s);
      if (v == NULL || napi_set_element(env, list, (uint32_t)i, v) != napi_ok) {
        napi_reject_deferred(env, j->deferred, take_exception(env, s->path));
        failed = true;
      }
      /* Each listing's C memory goes as soon as it is in JS. */
      scan_clear(s);
    }
    if (!failed) napi_resolve_deferred(env, j->deferred, list);
  }
  napi_delete_async_work(env, j->work);
  sjob_free(j);
}

static bool get_size(napi_env env, napi_value v, const char *what, double max, size_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > max || d != (double)(int64_t)d) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be an integer in 0…%.0f", what, max);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  *out = (size_t)d;
  return true;
}

static bool get_limits(napi_env env, napi_value *argv, scan_t *s) {
  size_t flags, max_value, max_count, max_list;
  if (!get_size(env, argv[0], "flags", 15, &flags) || !get_size(env, argv[1], "maxValue", 16 * 1024 * 1024, &max_value) ||
      !get_size(env, argv[2], "maxCount", 1 << 20, &max_count) || !get_size(env, argv[3], "maxListBytes", 64 * 1024 * 1024, &max_list))
    return false;
  s->flags = (int)flags;
  s->max_value = max_value;
  s->max_count = max_count;
  s->max_list = max_list;
  return true;
}

static napi_value scan_dir_sync(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!kiwi_get_args(env, info, 5, argv)) return NULL;
  scan_t s;
  memset(&s, 0, sizeof s);
  if (!get_limits(env, argv + 1, &s)) return NULL;
  s.path = kiwi_buffer_string(env, argv[0], "path", &s.path_len);
  if (!s.path) return NULL;
  scan_run(&s);
  napi_value result = NULL;
  if (s.err != 0) napi_throw(env, kiwi_errno_error(env, s.err, s.syscall, s.path));
  else result = make_result(env, &s);
  scan_clear(&s);
  return result;
}

/* Directories in one job, at most (a listing of the walk's read-ahead is a handful). */
#define MAX_DIRS 4096

static napi_value scan_dirs(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!kiwi_get_args(env, info, 5, argv)) return NULL;
  scan_t limits;
  memset(&limits, 0, sizeof limits);
  if (!get_limits(env, argv + 1, &limits)) return NULL;
  bool is_array = false;
  uint32_t n = 0;
  napi_is_array(env, argv[0], &is_array);
  if (!is_array || napi_get_array_length(env, argv[0], &n) != napi_ok || n == 0 || n > MAX_DIRS) {
    napi_throw_type_error(env, NULL, "paths must be an array of 1 to 4096 Buffers");
    return NULL;
  }
  sjob_t *j = calloc(1, sizeof *j);
  scan_t *scans = calloc(n, sizeof *scans);
  if (!j || !scans) {
    free(j);
    free(scans);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->scans = scans;
  j->n = n;
  for (uint32_t i = 0; i < n; i++) {
    napi_value p;
    scan_t *s = &scans[i];
    if (napi_get_element(env, argv[0], i, &p) != napi_ok || !(s->path = kiwi_buffer_string(env, p, "path", &s->path_len))) {
      sjob_free(j);
      return NULL;
    }
    s->flags = limits.flags;
    s->max_value = limits.max_value;
    s->max_count = limits.max_count;
    s->max_list = limits.max_list;
  }
  bool queued;
  napi_value promise = kiwi_queue_job(env, "kiwi.scanDirs", exec_cb, complete_cb, j, &j->deferred, &j->work, &queued);
  if (!queued) sjob_free(j);
  return promise;
}

void kiwi_register_scan(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"scanDirs", NULL, scan_dirs, NULL, NULL, NULL, napi_enumerable, NULL},
    {"scanDirSync", NULL, scan_dir_sync, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value yes;
  napi_get_boolean(env, true, &yes);
  napi_set_named_property(env, exports, "scanXattrsAt", yes);
}

#else

void kiwi_register_scan(napi_env env, napi_value exports) {
  /* Not built elsewhere: the walker reads directories with Node's fs. */
  (void)env;
  (void)exports;
}

#endif
