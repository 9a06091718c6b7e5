/*
 * Blob crypto off the main thread: AES-256-GCM decryption and HMAC-SHA-256, each call one job on
 * libuv's threadpool, so that a restore, a prune or a check does not spend its main thread on them.
 *
 *   aeadAvailable                     true when the functions below are exported
 *   aeadUnavailableReason             why not (only when aeadAvailable is false)
 *   gcmOpen(key, src, dst)    -> Promise<boolean>
 *   hmacSha256(key, data, out) -> Promise<void>
 *
 * gcmOpen: `key` is 32 bytes; `src` is `nonce(12) ‖ ciphertext ‖ tag(16)`; the plaintext
 * (src.length − 28 bytes) is written to the start of `dst`. Resolves true when the tag verifies;
 * false when it does not, and then those bytes of `dst` are zeroed (never left holding
 * unauthenticated plaintext). `dst` may overlap `src` when it starts at or before the ciphertext
 * (src + 12): the plaintext is then decrypted a slice at a time into a small bounce buffer and moved
 * into place behind the read position (OpenSSL refuses partially overlapping in and out buffers).
 * hmacSha256: the 32-byte HMAC-SHA-256 of `data` under `key` (32 bytes), copied into `out` on the
 * main thread when the job is done. The key is copied when the call is made (zeroing the caller's
 * key afterwards is safe); `src`, `dst`, `data` and `out` are held by a reference until the promise
 * settles and must not change (nor their ArrayBuffers be detached) meanwhile. Bad arguments reject
 * the promise with a TypeError.
 *
 * OpenSSL is not linked and its headers are not needed: the few functions are looked up at load
 * time with dlsym in the process's global scope (Node's official binaries export the OpenSSL they
 * carry; a distribution's Node links libcrypto, whose symbols are global too). All of them must be
 * found, in one and the same object, the OpenSSL must be 1.1.0 or newer, and known-answer tests
 * (GCM: one good message and a tampered one; HMAC: RFC 4231 case 2) must pass; else
 * `aeadAvailable` is false and the functions are not exported (callers use Node's crypto).
 */
#include "common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#define KIWI_HAVE_DLSYM 1
#endif

#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
#define OVERHEAD (NONCE_LEN + TAG_LEN)
#define MAC_LEN 32
/* Bytes decrypted per OpenSSL call: through the bounce buffer when dst overlaps src, else straight. */
#define BOUNCE_LEN (32 * 1024)
#define DIRECT_LEN (1024 * 1024)

/* OpenSSL's values (evp.h); the same in 1.1, 3.x and BoringSSL. */
#define KIWI_EVP_CTRL_GCM_SET_IVLEN 0x9
#define KIWI_EVP_CTRL_GCM_SET_TAG 0x11

typedef void *(*ctx_new_fn)(void);
typedef void (*ctx_free_fn)(void *ctx);
typedef const void *(*cipher_fn)(void);
typedef int (*decrypt_init_fn)(void *ctx, const void *cipher, void *engine, const unsigned char *key, const unsigned char *iv);
typedef int (*ctx_ctrl_fn)(void *ctx, int type, int arg, void *ptr);
typedef int (*decrypt_update_fn)(void *ctx, unsigned char *out, int *outl, const unsigned char *in, int inl);
typedef int (*decrypt_final_fn)(void *ctx, unsigned char *out, int *outl);
typedef const void *(*md_fn)(void);
typedef unsigned char *(*hmac_fn)(const void *md, const void *key, int key_len, const unsigned char *d, size_t n, unsigned char *out, unsigned int *out_len);
typedef unsigned long (*version_fn)(void);
typedef void (*clear_error_fn)(void);

static struct {
  ctx_new_fn ctx_new;
  ctx_free_fn ctx_free;
  cipher_fn aes_256_gcm;
  decrypt_init_fn decrypt_init;
  ctx_ctrl_fn ctx_ctrl;
  decrypt_update_fn decrypt_update;
  decrypt_final_fn decrypt_final;
  md_fn sha256;
  hmac_fn hmac;
  version_fn version;
  clear_error_fn clear_error;
} ossl;

static uv_once_t resolve_once = UV_ONCE_INIT;
static bool available = false;
static char unavailable_reason[160] = "not resolved";

/* memset that the compiler may not drop (the bytes are read by no one afterwards). */
static void wipe(void *p, size_t n) {
  volatile unsigned char *v = (volatile unsigned char *)p;
  while (n--) *v++ = 0;
}

/* ---------------------------------------------------------------- the work itself (any thread) */

typedef enum { OPEN_OK = 0, OPEN_FORGED = 1, OPEN_FAILED = 2 } open_result;

/*
 * Decrypts `ct` (ct_len bytes) into `dst` under key/nonce and checks `tag`. `dst` is either disjoint
 * from `ct` or starts at or before it (the caller checked). `*what` names the OpenSSL call that
 * failed for OPEN_FAILED. Never leaves plaintext in dst unless OPEN_OK.
 */
static open_result gcm_open_raw(const unsigned char *key, const unsigned char *nonce, const unsigned char *tag_in, const unsigned char *ct,
                                size_t ct_len, unsigned char *dst, bool overlap, const char **what) {
  unsigned char tag[TAG_LEN];
  memcpy(tag, tag_in, TAG_LEN); /* before any write to dst (it may lie over src) */
  open_result res = OPEN_FAILED;
  unsigned char *bounce = NULL, fin[16];
  int finl = 0;
  size_t step = DIRECT_LEN;
  void *ctx = ossl.ctx_new();
  *what = "EVP_CIPHER_CTX_new";
  if (!ctx) goto done;
  *what = "EVP_DecryptInit_ex";
  if (ossl.decrypt_init(ctx, ossl.aes_256_gcm(), NULL, NULL, NULL) != 1) goto done;
  *what = "EVP_CIPHER_CTX_ctrl(SET_IVLEN)";
  if (ossl.ctx_ctrl(ctx, KIWI_EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1) goto done;
  *what = "EVP_DecryptInit_ex";
  if (ossl.decrypt_init(ctx, NULL, NULL, key, nonce) != 1) goto done;
  *what = "EVP_CIPHER_CTX_ctrl(SET_TAG)";
  if (ossl.ctx_ctrl(ctx, KIWI_EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1) goto done;
  if (overlap && ct_len > 0) {
    *what = "malloc";
    bounce = malloc(BOUNCE_LEN);
    if (!bounce) goto done;
    step = BOUNCE_LEN;
  }
  *what = "EVP_DecryptUpdate";
  for (size_t pos = 0; pos < ct_len;) {
    size_t n = ct_len - pos < step ? ct_len - pos : step;
    int outl = -1;
    /*
     * Overlapping: the slice [pos, pos+n) of ct is read whole into the bounce buffer's plaintext
     * before dst[pos, pos+n) is written; dst + pos <= ct + pos, so the write lands on bytes already
     * read and never on ciphertext still to come (nor on the tag, copied above anyway).
     */
    unsigned char *out = bounce ? bounce : dst + pos;
    if (ossl.decrypt_update(ctx, out, &outl, ct + pos, (int)n) != 1 || outl != (int)n) goto done;
    if (bounce) memmove(dst + pos, bounce, n);
    pos += n;
  }
  if (ossl.decrypt_final(ctx, fin, &finl) > 0 && finl == 0) {
    res = OPEN_OK;
    goto done;
  }
  res = OPEN_FORGED;
done:
  /* A forged message, or a failure part-way: no unauthenticated plaintext is left behind. */
  if (res != OPEN_OK && ct_len > 0) memset(dst, 0, ct_len);
  if (bounce) {
    wipe(bounce, BOUNCE_LEN);
    free(bounce);
  }
  if (ctx) ossl.ctx_free(ctx);
  /* A failure may leave entries on this thread's OpenSSL error queue: do not leave them to Node's own crypto jobs. */
  if (res != OPEN_OK) ossl.clear_error();
  wipe(tag, sizeof tag);
  return res;
}

static bool hmac_raw(const unsigned char *key, const unsigned char *data, size_t len, unsigned char out[MAC_LEN]) {
  static const unsigned char empty[1] = {0};
  unsigned int out_len = 0;
  if (!ossl.hmac(ossl.sha256(), key, KEY_LEN, data ? data : empty, len, out, &out_len)) {
    ossl.clear_error();
    return false;
  }
  return out_len == MAC_LEN;
}

/* ---------------------------------------------------------------- resolving OpenSSL, checked once */

static bool hex_equal(const unsigned char *bytes, const char *hex, size_t n) {
  char buf[2 * 64 + 1];
  if (n > 64) return false;
  for (size_t i = 0; i < n; i++) snprintf(buf + 2 * i, 3, "%02x", bytes[i]);
  return strncmp(buf, hex, 2 * n) == 0 && hex[2 * n] == 0;
}

/* Known answers: the results must be OpenSSL's AES-256-GCM and HMAC-SHA-256, with these prototypes. */
static const char *self_test(void) {
  const char *what;
  /* AES-256-GCM, the all-zero key and nonce, 16 zero bytes (the GCM paper's test case 14). */
  unsigned char key[KEY_LEN] = {0}, nonce[NONCE_LEN] = {0}, msg[16 + TAG_LEN], out[16];
  static const unsigned char ct[16] = {0xce, 0xa7, 0x40, 0x3d, 0x4d, 0x60, 0x6b, 0x6e, 0x07, 0x4e, 0xc5, 0xd3, 0xba, 0xf3, 0x9d, 0x18};
  static const unsigned char tag[TAG_LEN] = {0xd0, 0xd1, 0xc8, 0xa7, 0x99, 0x99, 0x6b, 0xf0, 0x26, 0x5b, 0x98, 0xb5, 0xd4, 0x8a, 0xb9, 0x19};
  memcpy(msg, ct, 16);
  memcpy(msg + 16, tag, TAG_LEN);
  memset(out, 0xaa, sizeof out);
  if (gcm_open_raw(key, nonce, msg + 16, msg, 16, out, false, &what) != OPEN_OK) return "the AES-256-GCM known-answer test did not verify";
  for (int i = 0; i < 16; i++)
    if (out[i] != 0) return "the AES-256-GCM known-answer test decrypted wrongly";
  /* The same in place, with a tampered tag (last bit) and then tampered ciphertext: both refused, and zeroed. */
  msg[16 + TAG_LEN - 1] ^= 1;
  if (gcm_open_raw(key, nonce, msg + 16, msg, 16, msg, true, &what) != OPEN_FORGED) return "the AES-256-GCM known-answer test accepted a tampered tag";
  for (int i = 0; i < 16; i++)
    if (msg[i] != 0) return "the AES-256-GCM known-answer test left plaintext of a refused message";
  memcpy(msg, ct, 16);
  memcpy(msg + 16, tag, TAG_LEN);
  msg[3] ^= 0x80;
  if (gcm_open_raw(key, nonce, msg + 16, msg, 16, out, false, &what) != OPEN_FORGED) return "the AES-256-GCM known-answer test accepted tampered ciphertext";
  /* HMAC-SHA-256, RFC 4231 test case 2 ("Jefe"), through the same call with a 32-byte key padded by zeros (HMAC pads short keys so). */
  unsigned char hkey[KEY_LEN] = {'J', 'e', 'f', 'e'}, mac[MAC_LEN];
  const char *text = "what do ya want for nothing?";
  if (!hmac_raw(hkey, (const unsigned char *)text, strlen(text), mac)) return "HMAC failed in the known-answer test";
  if (!hex_equal(mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", MAC_LEN)) return "the HMAC-SHA-256 known-answer test failed";
  return NULL;
}

static void resolve(void) {
#ifndef KIWI_HAVE_DLSYM
  snprintf(unavailable_reason, sizeof unavailable_reason, "no dlsym on this platform");
#else
  static const char *const names[] = {
    "EVP_CIPHER_CTX_new", "EVP_CIPHER_CTX_free", "EVP_aes_256_gcm", "EVP_DecryptInit_ex", "EVP_CIPHER_CTX_ctrl",
    "EVP_DecryptUpdate",  "EVP_DecryptFinal_ex", "EVP_sha256",      "HMAC",               "OpenSSL_version_num",
    "ERR_clear_error",
  };
  void *found[sizeof names / sizeof names[0]];
  const void *base = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    found[i] = dlsym(RTLD_DEFAULT, names[i]);
    if (!found[i]) {
      snprintf(unavailable_reason, sizeof unavailable_reason, "OpenSSL's %s is not in the process", names[i]);
      return;
    }
    /* All from one object: never one OpenSSL's context with another's functions. */
    Dl_info info;
    if (!dladdr(found[i], &info) || !info.dli_fbase) {
      snprintf(unavailable_reason, sizeof unavailable_reason, "cannot tell which object holds %s", names[i]);
      return;
    }
    if (base && info.dli_fbase != base) {
      snprintf(unavailable_reason, sizeof unavailable_reason, "%s comes from another object than %s (%s)", names[i], names[0], info.dli_fname ? info.dli_fname : "?");
      return;
    }
    base = info.dli_fbase;
  }
  ossl.ctx_new = (ctx_new_fn)found[0];
  ossl.ctx_free = (ctx_free_fn)found[1];
  ossl.aes_256_gcm = (cipher_fn)found[2];
  ossl.decrypt_init = (decrypt_init_fn)found[3];
  ossl.ctx_ctrl = (ctx_ctrl_fn)found[4];
  ossl.decrypt_update = (decrypt_update_fn)found[5];
  ossl.decrypt_final = (decrypt_final_fn)found[6];
  ossl.sha256 = (md_fn)found[7];
  ossl.hmac = (hmac_fn)found[8];
  ossl.version = (version_fn)found[9];
  ossl.clear_error = (clear_error_fn)found[10];
  unsigned long v = ossl.version();
  if (v < 0x10100000UL) {
    snprintf(unavailable_reason, sizeof unavailable_reason, "OpenSSL %#lx is older than 1.1.0", v);
    return;
  }
  const char *bad = self_test();
  if (bad) {
    snprintf(unavailable_reason, sizeof unavailable_reason, "%s", bad);
    return;
  }
  unavailable_reason[0] = 0;
  available = true;
#endif
}

/* ---------------------------------------------------------------- N-API */

typedef struct {
  bool is_mac;
  unsigned char key[KEY_LEN];
  const unsigned char *src; /* gcmOpen: the whole message; hmac: the data */
  size_t src_len;
  unsigned char *dst; /* gcmOpen: the plaintext's place; hmac: out */
  bool overlap;
  napi_ref src_ref, dst_ref;
  unsigned char mac[MAC_LEN];
  open_result result;
  const char *what;
  napi_deferred deferred;
  napi_async_work work;
} cjob_t;

static void cjob_free(napi_env env, cjob_t *j) {
  if (!j) return;
  if (j->src_ref) napi_delete_reference(env, j->src_ref);
  if (j->dst_ref) napi_delete_reference(env, j->dst_ref);
  wipe(j->key, sizeof j->key);
  wipe(j->mac, sizeof j->mac);
  free(j);
}

static void exec_cb(napi_env env, void *data) {
  (void)env;
  cjob_t *j = (cjob_t *)data;
  if (j->is_mac) {
    j->what = "HMAC";
    j->result = hmac_raw(j->key, j->src, j->src_len, j->mac) ? OPEN_OK : OPEN_FAILED;
  } else {
    size_t ct_len = j->src_len - OVERHEAD;
    j->result = gcm_open_raw(j->key, j->src, j->src + NONCE_LEN + ct_len, j->src + NONCE_LEN, ct_len, j->dst, j->overlap, &j->what);
  }
  wipe(j->key, sizeof j->key);
}

static void reject_message(napi_env env, napi_deferred d, const char *code, const char *message, bool type_error) {
  napi_value jmsg, jcode, err;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode);
  if (type_error) napi_create_type_error(env, jcode, jmsg, &err);
  else napi_create_error(env, jcode, jmsg, &err);
  napi_reject_deferred(env, d, err);
}

static void complete_cb(napi_env env, napi_status status, void *data) {
  cjob_t *j = (cjob_t *)data;
  if (status != napi_ok) {
    reject_message(env, j->deferred, "ERR_KIWI_CANCELLED", "native-fs: async work was cancelled", false);
  } else if (j->result == OPEN_FAILED) {
    char msg[128];
    snprintf(msg, sizeof msg, "native-fs: OpenSSL's %s failed", j->what ? j->what : "?");
    reject_message(env, j->deferred, "ERR_KIWI_CRYPTO", msg, false);
  } else if (j->is_mac) {
    memcpy(j->dst, j->mac, MAC_LEN); /* on this thread: `out` is only ever written where JS runs */
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, j->deferred, undef);
  } else {
    napi_value b;
    napi_get_boolean(env, j->result == OPEN_OK, &b);
    napi_resolve_deferred(env, j->deferred, b);
  }
  napi_delete_async_work(env, j->work);
  cjob_free(env, j);
}

/* A Uint8Array (a Buffer is one): its bytes and length; false when `v` is anything else. */
static bool get_bytes(napi_env env, napi_value v, unsigned char **data, size_t *len) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return false;
  napi_typedarray_type type;
  void *p = NULL;
  size_t n = 0;
  if (napi_get_typedarray_info(env, v, &type, &n, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) return false;
  if (n > 0 && p == NULL) return false; /* detached */
  *data = (unsigned char *)p;
  *len = n;
  return true;
}

/* Starts a call: its job and promise. NULL (with a pending exception) only when even that failed. */
static cjob_t *start(napi_env env, napi_callback_info info, napi_value argv[3], napi_value *promise) {
  size_t argc = 3;
  argv[0] = argv[1] = argv[2] = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  cjob_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (napi_create_promise(env, &j->deferred, promise) != napi_ok) {
    free(j);
    napi_throw_error(env, NULL, "native-fs: cannot create a promise");
    return NULL;
  }
  if (argc < 3) {
    for (size_t i = argc; i < 3; i++) napi_get_undefined(env, &argv[i]);
  }
  return j;
}

/* Rejects the call's promise with a TypeError and drops the job; returns the promise. */
static napi_value fail_type(napi_env env, cjob_t *j, napi_value promise, const char *message) {
  reject_message(env, j->deferred, "ERR_INVALID_ARG_TYPE", message, true);
  cjob_free(env, j);
  return promise;
}

static napi_value queue(napi_env env, cjob_t *j, napi_value promise, const char *name) {
  napi_value jname;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &jname);
  if (napi_create_async_work(env, NULL, jname, exec_cb, complete_cb, j, &j->work) != napi_ok) {
    reject_message(env, j->deferred, "ERR_KIWI_QUEUE", "native-fs: cannot create async work", false);
    cjob_free(env, j);
    return promise;
  }
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_async_work(env, j->work);
    reject_message(env, j->deferred, "ERR_KIWI_QUEUE", "native-fs: cannot queue async work", false);
    cjob_free(env, j);
  }
  return promise;
}

static bool hold(napi_env env, napi_value v, napi_ref *ref) {
  return napi_create_reference(env, v, 1, ref) == napi_ok;
}

static bool get_key(napi_env env, napi_value v, cjob_t *j) {
  unsigned char *k;
  size_t n;
  if (!get_bytes(env, v, &k, &n) || n != KEY_LEN) return false;
  memcpy(j->key, k, KEY_LEN);
  return true;
}

/* gcmOpen(key, src, dst) -> Promise<boolean> */
static napi_value gcm_open(napi_env env, napi_callback_info info) {
  napi_value argv[3], promise;
  cjob_t *j = start(env, info, argv, &promise);
  if (!j) return NULL;
  unsigned char *src, *dst;
  size_t src_len, dst_len;
  if (!get_key(env, argv[0], j)) return fail_type(env, j, promise, "gcmOpen: key must be a Uint8Array of 32 bytes");
  if (!get_bytes(env, argv[1], &src, &src_len)) return fail_type(env, j, promise, "gcmOpen: src must be a Uint8Array");
  if (src_len < OVERHEAD) return fail_type(env, j, promise, "gcmOpen: src is shorter than nonce and tag (28 bytes)");
  if (!get_bytes(env, argv[2], &dst, &dst_len)) return fail_type(env, j, promise, "gcmOpen: dst must be a Uint8Array");
  size_t plen = src_len - OVERHEAD;
  if (dst_len < plen) return fail_type(env, j, promise, "gcmOpen: dst is shorter than the plaintext (src.length - 28 bytes)");
  if (plen > (size_t)1 << 40) return fail_type(env, j, promise, "gcmOpen: src is too large");
  uintptr_t s = (uintptr_t)src, d = (uintptr_t)dst;
  bool overlap = plen > 0 && d < s + src_len && s < d + plen;
  if (overlap && d > s + NONCE_LEN) return fail_type(env, j, promise, "gcmOpen: dst overlaps src and starts after its ciphertext");
  j->src = src;
  j->src_len = src_len;
  j->dst = dst;
  j->overlap = overlap;
  if (!hold(env, argv[1], &j->src_ref) || !hold(env, argv[2], &j->dst_ref)) return fail_type(env, j, promise, "gcmOpen: cannot hold the buffers");
  return queue(env, j, promise, "kiwi.gcmOpen");
}

/* hmacSha256(key, data, out) -> Promise<void> */
static napi_value hmac_sha256(napi_env env, napi_callback_info info) {
  napi_value argv[3], promise;
  cjob_t *j = start(env, info, argv, &promise);
  if (!j) return NULL;
  unsigned char *data, *out;
  size_t len, out_len;
  j->is_mac = true;
  if (!get_key(env, argv[0], j)) return fail_type(env, j, promise, "hmacSha256: key must be a Uint8Array of 32 bytes");
  if (!get_bytes(env, argv[1], &data, &len)) return fail_type(env, j, promise, "hmacSha256: data must be a Uint8Array");
  if (!get_bytes(env, argv[2], &out, &out_len) || out_len < MAC_LEN) return fail_type(env, j, promise, "hmacSha256: out must be a Uint8Array of at least 32 bytes");
  j->src = data;
  j->src_len = len;
  j->dst = out;
  if (!hold(env, argv[1], &j->src_ref) || !hold(env, argv[2], &j->dst_ref)) return fail_type(env, j, promise, "hmacSha256: cannot hold the buffers");
  return queue(env, j, promise, "kiwi.hmacSha256");
}

void kiwi_register_aead(napi_env env, napi_value exports) {
  uv_once(&resolve_once, resolve);
  napi_value flag;
  napi_get_boolean(env, available, &flag);
  napi_set_named_property(env, exports, "aeadAvailable", flag);
  if (!available) {
    napi_value why;
    napi_create_string_utf8(env, unavailable_reason, NAPI_AUTO_LENGTH, &why);
    napi_set_named_property(env, exports, "aeadUnavailableReason", why);
    return;
  }
  napi_property_descriptor props[] = {
    {"gcmOpen", NULL, gcm_open, NULL, NULL, NULL, napi_enumerable, NULL},
    {"hmacSha256", NULL, hmac_sha256, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
