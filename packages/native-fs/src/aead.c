/*
 * Blob crypto with the process's OpenSSL: AES-256-GCM decryption and HMAC-SHA-256 of large blobs,
 * each call one job on libuv's threadpool, so that a restore, a prune or a check does not spend its
 * main thread on them; and for small messages, where a threadpool hop costs more than it saves,
 * AES-256-GCM both ways and HMAC-SHA-256 on the calling thread with no allocation per call.
 *
 *   aeadAvailable                     true when the functions below are exported
 *   aeadUnavailableReason             why not (only when aeadAvailable is false)
 *   gcmOpen(key, src, dst)    -> Promise<boolean>
 *   hmacSha256(key, data, out) -> Promise<void>
 *   gcmSealSync(key, nonce, src, dst, dstOffset = 0) -> number (bytes written: src.length + 28)
 *   gcmOpenSync(key, src, dst) -> boolean
 *   hmacSha256Sync(key, data, out) -> undefined
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
 * The synchronous calls run on the calling thread and return when done. gcmSealSync writes
 * `nonce ‖ ciphertext ‖ tag` into dst at dstOffset; gcmOpenSync is gcmOpen's twin (false and the
 * plaintext zeroed for a forged message); hmacSha256Sync writes the MAC to out's first 32 bytes.
 * Overlap: dst (the output's bytes) may overlap the input in any way; the result is as if the input
 * had been copied away first. The plaintext (seal) or ciphertext (open) is processed in place when
 * it already lies where its output goes (seal: src = dst + dstOffset + 12; open: dst = src + 12),
 * else moved there first with memmove when the two overlap (OpenSSL takes the same or disjoint
 * buffers only); key, nonce and tag are copied before anything is written. They keep a cipher
 * context per direction and an HMAC context per N-API environment (one per JS thread: the main
 * thread, each worker), re-keyed only when another key comes and freed, their keys wiped, when the
 * environment is torn down. Wrong types and key or nonce sizes throw a TypeError, sizes and bounds
 * a RangeError (nothing written), an OpenSSL failure an Error (code ERR_KIWI_CRYPTO, output zeroed).
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
#if defined(__linux__)
#include <link.h>
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
#define KIWI_EVP_CTRL_GCM_GET_TAG 0x10
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
typedef int (*encrypt_init_fn)(void *ctx, const void *cipher, void *engine, const unsigned char *key, const unsigned char *iv);
typedef int (*encrypt_update_fn)(void *ctx, unsigned char *out, int *outl, const unsigned char *in, int inl);
typedef int (*encrypt_final_fn)(void *ctx, unsigned char *out, int *outl);
typedef void *(*hmac_ctx_new_fn)(void);
typedef void (*hmac_ctx_free_fn)(void *ctx);
typedef int (*hmac_init_fn)(void *ctx, const void *key, int len, const void *md, void *engine);
typedef int (*hmac_update_fn)(void *ctx, const unsigned char *data, size_t len);
typedef int (*hmac_final_fn)(void *ctx, unsigned char *md, unsigned int *len);
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
  encrypt_init_fn encrypt_init;
  encrypt_update_fn encrypt_update;
  encrypt_final_fn encrypt_final;
  /* Optional (deprecated in OpenSSL 3, absent from a build without deprecated APIs): a reusable HMAC
   * context for hmacSha256Sync. Without them it takes the one-shot HMAC(). */
  hmac_ctx_new_fn hmac_ctx_new;
  hmac_ctx_free_fn hmac_ctx_free;
  hmac_init_fn hmac_init;
  hmac_update_fn hmac_update;
  hmac_final_fn hmac_final;
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

/* ---------------------------------------------------------------- the synchronous calls' contexts (one set per JS thread) */

/*
 * A cipher context kept between messages of one thread (one N-API environment: the main thread, or
 * a worker's), so that a message costs no context allocation and no cipher set-up: created on first
 * use, re-keyed only when another key comes, given each message's nonce. It holds the last key's
 * expanded schedule until then, or until the environment is torn down (then it is freed, and the
 * copy of the key wiped); an OpenSSL failure drops it (the next call starts afresh).
 */
typedef struct {
  void *ctx;
  bool keyed;
  unsigned char key[KEY_LEN];
} gcm_slot;

typedef struct {
  gcm_slot seal, open;
  void *hmac; /* HMAC_CTX, when the optional functions are there */
  bool hmac_keyed;
  unsigned char hmac_key[KEY_LEN];
} sync_state;

static bool same_key(const unsigned char *a, const unsigned char *b) {
  unsigned char d = 0;
  for (int i = 0; i < KEY_LEN; i++) d |= a[i] ^ b[i];
  return d == 0;
}

static void slot_drop(gcm_slot *slot) {
  if (slot->ctx) ossl.ctx_free(slot->ctx);
  slot->ctx = NULL;
  slot->keyed = false;
  wipe(slot->key, KEY_LEN);
}

static void sync_state_clear(sync_state *st) {
  slot_drop(&st->seal);
  slot_drop(&st->open);
  if (st->hmac) ossl.hmac_ctx_free(st->hmac);
  st->hmac = NULL;
  st->hmac_keyed = false;
  wipe(st->hmac_key, KEY_LEN);
}

/* Readies the slot for one message under key and nonce. False (the slot dropped) when OpenSSL fails. */
static bool slot_begin(gcm_slot *slot, bool enc, const unsigned char *key, const unsigned char *nonce, const char **what) {
  /* EVP_EncryptInit_ex and EVP_DecryptInit_ex have the same prototype. */
  decrypt_init_fn init = enc ? (decrypt_init_fn)ossl.encrypt_init : ossl.decrypt_init;
  const char *init_name = enc ? "EVP_EncryptInit_ex" : "EVP_DecryptInit_ex";
  if (!slot->ctx) {
    slot->keyed = false;
    *what = "EVP_CIPHER_CTX_new";
    if (!(slot->ctx = ossl.ctx_new())) goto fail;
    *what = init_name;
    if (init(slot->ctx, ossl.aes_256_gcm(), NULL, NULL, NULL) != 1) goto fail;
    *what = "EVP_CIPHER_CTX_ctrl(SET_IVLEN)";
    if (ossl.ctx_ctrl(slot->ctx, KIWI_EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1) goto fail;
  }
  bool rekey = !slot->keyed || !same_key(slot->key, key);
  *what = init_name;
  /* A NULL key keeps the one set before (OpenSSL 1.1 and 3 alike): only the nonce, and the state, are new. */
  if (init(slot->ctx, NULL, NULL, rekey ? key : NULL, nonce) != 1) goto fail;
  if (rekey) {
    memcpy(slot->key, key, KEY_LEN);
    slot->keyed = true;
  }
  return true;
fail:
  slot_drop(slot);
  return false;
}

/*
 * Encrypts `len` bytes from `in` to `out` (the same memory, or disjoint: the caller made sure) and
 * writes the tag to `tag`. False (`*what` naming the call) when OpenSSL fails.
 */
static bool gcm_seal_slot(gcm_slot *slot, const unsigned char *key, const unsigned char *nonce, const unsigned char *in, size_t len,
                          unsigned char *out, unsigned char tag[TAG_LEN], const char **what) {
  unsigned char fin[16];
  int finl = -1;
  if (!slot_begin(slot, true, key, nonce, what)) goto fail;
  *what = "EVP_EncryptUpdate";
  for (size_t pos = 0; pos < len;) {
    size_t n = len - pos < DIRECT_LEN ? len - pos : DIRECT_LEN;
    int outl = -1;
    if (ossl.encrypt_update(slot->ctx, out + pos, &outl, in + pos, (int)n) != 1 || outl != (int)n) goto fail;
    pos += n;
  }
  *what = "EVP_EncryptFinal_ex";
  if (ossl.encrypt_final(slot->ctx, fin, &finl) != 1 || finl != 0) goto fail;
  *what = "EVP_CIPHER_CTX_ctrl(GET_TAG)";
  if (ossl.ctx_ctrl(slot->ctx, KIWI_EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1) goto fail;
  return true;
fail:
  slot_drop(slot);
  ossl.clear_error();
  return false;
}

/*
 * Decrypts `len` bytes of `ct` into `dst` (the same memory, or disjoint: the caller made sure) and
 * checks `tag` (the caller's copy: it may not lie in dst). Never leaves plaintext in dst unless OPEN_OK.
 */
static open_result gcm_open_slot(gcm_slot *slot, const unsigned char *key, const unsigned char *nonce, unsigned char tag[TAG_LEN], const unsigned char *ct,
                                 size_t len, unsigned char *dst, const char **what) {
  open_result res = OPEN_FAILED;
  unsigned char fin[16];
  int finl = -1;
  if (!slot_begin(slot, false, key, nonce, what)) goto done;
  *what = "EVP_CIPHER_CTX_ctrl(SET_TAG)";
  if (ossl.ctx_ctrl(slot->ctx, KIWI_EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1) goto done;
  *what = "EVP_DecryptUpdate";
  for (size_t pos = 0; pos < len;) {
    size_t n = len - pos < DIRECT_LEN ? len - pos : DIRECT_LEN;
    int outl = -1;
    if (ossl.decrypt_update(slot->ctx, dst + pos, &outl, ct + pos, (int)n) != 1 || outl != (int)n) goto done;
    pos += n;
  }
  res = ossl.decrypt_final(slot->ctx, fin, &finl) > 0 && finl == 0 ? OPEN_OK : OPEN_FORGED;
done:
  if (res != OPEN_OK && len > 0) memset(dst, 0, len);
  if (res == OPEN_FAILED) slot_drop(slot);
  if (res != OPEN_OK) ossl.clear_error();
  return res;
}

/* HMAC-SHA-256 through the thread's kept HMAC context (re-keyed only for another key), or the one-shot HMAC() without one. */
static bool hmac_sync(sync_state *st, const unsigned char *key, const unsigned char *data, size_t len, unsigned char out[MAC_LEN]) {
  static const unsigned char empty[1] = {0};
  unsigned int out_len = 0;
  if (!ossl.hmac_ctx_new) return hmac_raw(key, data, len, out);
  if (!st->hmac) {
    st->hmac_keyed = false;
    if (!(st->hmac = ossl.hmac_ctx_new())) goto fail;
  }
  bool rekey = !st->hmac_keyed || !same_key(st->hmac_key, key);
  /* HMAC_Init_ex with neither key nor digest starts a new message under the key set before. */
  if (ossl.hmac_init(st->hmac, rekey ? key : NULL, rekey ? KEY_LEN : 0, rekey ? ossl.sha256() : NULL, NULL) != 1) goto fail;
  if (rekey) {
    memcpy(st->hmac_key, key, KEY_LEN);
    st->hmac_keyed = true;
  }
  if (ossl.hmac_update(st->hmac, data ? data : empty, len) != 1) goto fail;
  if (ossl.hmac_final(st->hmac, out, &out_len) != 1 || out_len != MAC_LEN) goto fail;
  return true;
fail:
  if (st->hmac) ossl.hmac_ctx_free(st->hmac);
  st->hmac = NULL;
  st->hmac_keyed = false;
  wipe(st->hmac_key, KEY_LEN);
  ossl.clear_error();
  return false;
}

/* ---------------------------------------------------------------- resolving OpenSSL, checked once */

static bool hex_equal(const unsigned char *bytes, const char *hex, size_t n) {
  char buf[2 * 64 + 1];
  if (n > 64) return false;
  for (size_t i = 0; i < n; i++) snprintf(buf + 2 * i, 3, "%02x", bytes[i]);
  return strncmp(buf, hex, 2 * n) == 0 && hex[2 * n] == 0;
}

/* AES-256-GCM, the all-zero key and nonce: 16 zero bytes (the GCM paper's test case 14), and the empty message (case 13). */
static const unsigned char kat_ct14[16] = {0xce, 0xa7, 0x40, 0x3d, 0x4d, 0x60, 0x6b, 0x6e, 0x07, 0x4e, 0xc5, 0xd3, 0xba, 0xf3, 0x9d, 0x18};
static const unsigned char kat_tag14[TAG_LEN] = {0xd0, 0xd1, 0xc8, 0xa7, 0x99, 0x99, 0x6b, 0xf0, 0x26, 0x5b, 0x98, 0xb5, 0xd4, 0x8a, 0xb9, 0x19};
static const unsigned char kat_tag13[TAG_LEN] = {0x53, 0x0f, 0x8a, 0xfb, 0xc7, 0x45, 0x36, 0xb9, 0xa9, 0x63, 0xb4, 0xf1, 0xc4, 0xcb, 0x73, 0x8b};
/* HMAC-SHA-256, RFC 4231 test case 2 ("Jefe"), with a 32-byte key padded by zeros (HMAC pads short keys so). */
static const char kat_hmac_text[] = "what do ya want for nothing?";
static const char kat_hmac_hex[] = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

/*
 * The synchronous calls' kept contexts: known answers sealed through one context (the second on the
 * key kept from the first), a message under another key and nonce equal to a fresh context's, in
 * place too, opened back (kept key, a forged tag refused and zeroed, the context usable afterwards),
 * and HMAC on a kept key, after another key, and back. NULL when all pass; else what failed, and
 * `*hmac_only` tells whether only the optional HMAC context failed.
 */
static const char *self_test_sync(sync_state *st, bool *hmac_only) {
  const char *what;
  *hmac_only = false;
  unsigned char key[KEY_LEN] = {0}, nonce[NONCE_LEN] = {0}, zeros[16] = {0}, out[64], tag[TAG_LEN];
  if (!gcm_seal_slot(&st->seal, key, nonce, zeros, 16, out, tag, &what) || memcmp(out, kat_ct14, 16) != 0 || memcmp(tag, kat_tag14, TAG_LEN) != 0)
    return "the AES-256-GCM sealing known-answer test failed";
  if (!gcm_seal_slot(&st->seal, key, nonce, zeros, 0, out, tag, &what) || memcmp(tag, kat_tag13, TAG_LEN) != 0)
    return "the AES-256-GCM sealing known-answer test failed on a kept key";
  unsigned char key2[KEY_LEN], nonce2[NONCE_LEN], msg[40], fresh[40], fresh_tag[TAG_LEN], buf[40];
  for (int i = 0; i < KEY_LEN; i++) key2[i] = (unsigned char)(7 * i + 1);
  for (int i = 0; i < NONCE_LEN; i++) nonce2[i] = (unsigned char)(0xa0 + i);
  for (int i = 0; i < 40; i++) msg[i] = (unsigned char)(3 * i);
  gcm_slot one = {0};
  bool ok = gcm_seal_slot(&one, key2, nonce2, msg, 40, fresh, fresh_tag, &what);
  slot_drop(&one);
  if (!ok) return "AES-256-GCM sealing failed in the known-answer test";
  if (!gcm_seal_slot(&st->seal, key2, nonce, msg, 40, out, tag, &what) || !gcm_seal_slot(&st->seal, key2, nonce2, msg, 40, out, tag, &what) ||
      memcmp(out, fresh, 40) != 0 || memcmp(tag, fresh_tag, TAG_LEN) != 0)
    return "AES-256-GCM on a kept key differs from a fresh context";
  memcpy(buf, msg, 40);
  if (!gcm_seal_slot(&st->seal, key2, nonce2, buf, 40, buf, tag, &what) || memcmp(buf, fresh, 40) != 0 || memcmp(tag, fresh_tag, TAG_LEN) != 0)
    return "AES-256-GCM sealing in place differs";
  for (int round = 0; round < 2; round++) {
    memcpy(tag, fresh_tag, TAG_LEN);
    if (gcm_open_slot(&st->open, key2, nonce2, tag, fresh, 40, out, &what) != OPEN_OK || memcmp(out, msg, 40) != 0)
      return "the AES-256-GCM known-answer test did not open on a kept context";
  }
  memcpy(tag, fresh_tag, TAG_LEN);
  tag[0] ^= 1;
  memset(out, 0xaa, 40);
  if (gcm_open_slot(&st->open, key2, nonce2, tag, fresh, 40, out, &what) != OPEN_FORGED) return "AES-256-GCM on a kept context accepted a tampered tag";
  for (int i = 0; i < 40; i++)
    if (out[i] != 0) return "AES-256-GCM on a kept context left plaintext of a refused message";
  memcpy(buf, fresh, 40);
  memcpy(tag, fresh_tag, TAG_LEN);
  if (gcm_open_slot(&st->open, key2, nonce2, tag, buf, 40, buf, &what) != OPEN_OK || memcmp(buf, msg, 40) != 0)
    return "AES-256-GCM opening in place after a refused message failed";
  *hmac_only = true;
  unsigned char hkey[KEY_LEN] = {'J', 'e', 'f', 'e'}, mac[MAC_LEN];
  for (int round = 0; round < 4; round++) {
    /* Round 2 under another key: round 3 re-keys back. */
    const unsigned char *k = round == 2 ? key2 : hkey;
    if (!hmac_sync(st, k, (const unsigned char *)kat_hmac_text, strlen(kat_hmac_text), mac)) return "HMAC on a kept context failed";
    if (round != 2 && !hex_equal(mac, kat_hmac_hex, MAC_LEN)) return "the HMAC-SHA-256 known-answer test failed on a kept context";
  }
  *hmac_only = false;
  return NULL;
}

/* Known answers: the results must be OpenSSL's AES-256-GCM and HMAC-SHA-256, with these prototypes. */
static const char *self_test(void) {
  const char *what;
  unsigned char key[KEY_LEN] = {0}, nonce[NONCE_LEN] = {0}, msg[16 + TAG_LEN], out[16];
  const unsigned char *ct = kat_ct14, *tag = kat_tag14;
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
  unsigned char hkey[KEY_LEN] = {'J', 'e', 'f', 'e'}, mac[MAC_LEN];
  if (!hmac_raw(hkey, (const unsigned char *)kat_hmac_text, strlen(kat_hmac_text), mac)) return "HMAC failed in the known-answer test";
  if (!hex_equal(mac, kat_hmac_hex, MAC_LEN)) return "the HMAC-SHA-256 known-answer test failed";
  sync_state st;
  memset(&st, 0, sizeof st);
  bool hmac_only = false;
  const char *bad = self_test_sync(&st, &hmac_only);
  sync_state_clear(&st);
  if (bad && hmac_only) {
    /* The optional HMAC context does not work as it should: the synchronous HMAC takes the one-shot HMAC() instead. */
    ossl.hmac_ctx_new = NULL;
    bad = NULL;
  }
  return bad;
}

#ifdef KIWI_HAVE_DLSYM
#if defined(__linux__)
typedef struct {
  uintptr_t addr;
  const void *id;
  const char *name;
} object_query;

static int object_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  object_query *q = (object_query *)data;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t start = (uintptr_t)info->dlpi_addr + (uintptr_t)ph->p_vaddr;
    if (q->addr >= start && q->addr - start < (uintptr_t)ph->p_memsz) {
      q->id = info->dlpi_phdr;
      q->name = info->dlpi_name;
      return 1;
    }
  }
  return 0;
}
#endif

/*
 * The loaded object (executable or library) that holds `addr`, as an identity to compare; NULL when
 * unknown. On Linux from the objects' program headers: dladdr would also look for the nearest
 * symbol, a scan of every exported symbol of the object, and Node's executable exports a hundred
 * thousand (0.7 ms a call on these machines, 13 ms at every start).
 */
static const void *object_of(void *addr, const char **name) {
#if defined(__linux__)
  object_query q = {(uintptr_t)addr, NULL, NULL};
  if (dl_iterate_phdr(object_cb, &q) == 0) return NULL;
  if (name) *name = q.name;
  return q.id;
#else
  Dl_info info;
  if (!dladdr(addr, &info) || !info.dli_fbase) return NULL;
  if (name) *name = info.dli_fname;
  return info.dli_fbase;
#endif
}
#endif

static void resolve(void) {
#ifndef KIWI_HAVE_DLSYM
  snprintf(unavailable_reason, sizeof unavailable_reason, "no dlsym on this platform");
#else
  static const char *const names[] = {
    "EVP_CIPHER_CTX_new", "EVP_CIPHER_CTX_free", "EVP_aes_256_gcm", "EVP_DecryptInit_ex", "EVP_CIPHER_CTX_ctrl",
    "EVP_DecryptUpdate",  "EVP_DecryptFinal_ex", "EVP_sha256",      "HMAC",               "OpenSSL_version_num",
    "ERR_clear_error",    "EVP_EncryptInit_ex",  "EVP_EncryptUpdate", "EVP_EncryptFinal_ex",
  };
  /* Optional, all or none (see ossl.hmac_ctx_new). */
  static const char *const hmac_names[] = {"HMAC_CTX_new", "HMAC_CTX_free", "HMAC_Init_ex", "HMAC_Update", "HMAC_Final"};
  void *found[sizeof names / sizeof names[0]];
  const void *base = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    found[i] = dlsym(RTLD_DEFAULT, names[i]);
    if (!found[i]) {
      snprintf(unavailable_reason, sizeof unavailable_reason, "OpenSSL's %s is not in the process", names[i]);
      return;
    }
    /* All from one object: never one OpenSSL's context with another's functions. */
    const char *fname = NULL;
    const void *fbase = object_of(found[i], &fname);
    if (!fbase) {
      snprintf(unavailable_reason, sizeof unavailable_reason, "cannot tell which object holds %s", names[i]);
      return;
    }
    if (base && fbase != base) {
      snprintf(unavailable_reason, sizeof unavailable_reason, "%s comes from another object than %s (%s)", names[i], names[0], fname ? fname : "?");
      return;
    }
    base = fbase;
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
  ossl.encrypt_init = (encrypt_init_fn)found[11];
  ossl.encrypt_update = (encrypt_update_fn)found[12];
  ossl.encrypt_final = (encrypt_final_fn)found[13];
  void *hfound[sizeof hmac_names / sizeof hmac_names[0]];
  bool hmac_ctx_ok = true;
  for (size_t i = 0; i < sizeof hmac_names / sizeof hmac_names[0] && hmac_ctx_ok; i++) {
    hfound[i] = dlsym(RTLD_DEFAULT, hmac_names[i]);
    hmac_ctx_ok = hfound[i] && object_of(hfound[i], NULL) == base;
  }
  if (hmac_ctx_ok) {
    ossl.hmac_ctx_new = (hmac_ctx_new_fn)hfound[0];
    ossl.hmac_ctx_free = (hmac_ctx_free_fn)hfound[1];
    ossl.hmac_init = (hmac_init_fn)hfound[2];
    ossl.hmac_update = (hmac_update_fn)hfound[3];
    ossl.hmac_final = (hmac_final_fn)hfound[4];
  }
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

/* ---------------------------------------------------------------- N-API: the synchronous calls */

#define GCM_MAX_PLAIN (((size_t)1 << 36) - 32) /* GCM's limit for one message: 2^39 − 256 bits */

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *message) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
  return NULL;
}

static napi_value throw_crypto(napi_env env, const char *fn, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "native-fs: %s: OpenSSL's %s failed", fn, what ? what : "?");
  napi_throw_error(env, "ERR_KIWI_CRYPTO", msg);
  return NULL;
}

/* The arguments (missing ones undefined) and the environment's state; NULL with an exception pending when even that failed. */
static sync_state *sync_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, &data) != napi_ok || !data) {
    napi_throw_error(env, NULL, "native-fs: cannot read the call's arguments");
    return NULL;
  }
  for (size_t i = argc; i < want; i++) napi_get_undefined(env, &argv[i]);
  return (sync_state *)data;
}

static bool ranges_overlap(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen) {
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return alen > 0 && blen > 0 && x < y + blen && y < x + alen;
}

/* gcmSealSync(key, nonce, src, dst, dstOffset = 0) -> bytes written (src.length + 28) */
static napi_value gcm_seal_sync(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  sync_state *st = sync_args(env, info, 5, argv);
  if (!st) return NULL;
  unsigned char *key, *nonce, *src, *dst;
  size_t key_len, nonce_len, len, dst_len, off = 0;
  if (!get_bytes(env, argv[0], &key, &key_len) || key_len != KEY_LEN) return throw_type(env, "gcmSealSync: key must be a Uint8Array of 32 bytes");
  if (!get_bytes(env, argv[1], &nonce, &nonce_len) || nonce_len != NONCE_LEN) return throw_type(env, "gcmSealSync: nonce must be a Uint8Array of 12 bytes");
  if (!get_bytes(env, argv[2], &src, &len)) return throw_type(env, "gcmSealSync: src must be a Uint8Array");
  if (!get_bytes(env, argv[3], &dst, &dst_len)) return throw_type(env, "gcmSealSync: dst must be a Uint8Array");
  napi_valuetype t;
  if (napi_typeof(env, argv[4], &t) != napi_ok) return NULL;
  if (t != napi_undefined) {
    double d;
    if (t != napi_number || napi_get_value_double(env, argv[4], &d) != napi_ok) return throw_type(env, "gcmSealSync: dstOffset must be a number");
    if (!(d >= 0) || d != (double)(int64_t)d || d > (double)dst_len) return throw_range(env, "gcmSealSync: dstOffset must be an integer from 0 to dst.length");
    off = (size_t)d;
  }
  if (len > GCM_MAX_PLAIN) return throw_range(env, "gcmSealSync: src is too large for one AES-GCM message");
  size_t total = len + OVERHEAD;
  if (dst_len - off < total) return throw_range(env, "gcmSealSync: dst has no room for src.length + 28 bytes at dstOffset");
  unsigned char k[KEY_LEN], iv[NONCE_LEN], tag[TAG_LEN];
  /* Copies first: key and nonce may lie anywhere, even where the output goes. */
  memcpy(k, key, KEY_LEN);
  memcpy(iv, nonce, NONCE_LEN);
  unsigned char *out = dst + off;
  const unsigned char *in = src;
  /* Overlapping (other than the plaintext already where its ciphertext goes): the plaintext is moved there first, then encrypted in place. */
  if (ranges_overlap(src, len, out, total) && src != out + NONCE_LEN) {
    memmove(out + NONCE_LEN, src, len);
    in = out + NONCE_LEN;
  }
  const char *what = NULL;
  bool ok = gcm_seal_slot(&st->seal, k, iv, in, len, out + NONCE_LEN, tag, &what);
  wipe(k, KEY_LEN);
  if (!ok) {
    memset(out, 0, total);
    return throw_crypto(env, "gcmSealSync", what);
  }
  memcpy(out, iv, NONCE_LEN);
  memcpy(out + NONCE_LEN + len, tag, TAG_LEN);
  napi_value r;
  napi_create_double(env, (double)total, &r);
  return r;
}

/* gcmOpenSync(key, src, dst) -> boolean */
static napi_value gcm_open_sync(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  sync_state *st = sync_args(env, info, 3, argv);
  if (!st) return NULL;
  unsigned char *key, *src, *dst;
  size_t key_len, src_len, dst_len;
  if (!get_bytes(env, argv[0], &key, &key_len) || key_len != KEY_LEN) return throw_type(env, "gcmOpenSync: key must be a Uint8Array of 32 bytes");
  if (!get_bytes(env, argv[1], &src, &src_len)) return throw_type(env, "gcmOpenSync: src must be a Uint8Array");
  if (!get_bytes(env, argv[2], &dst, &dst_len)) return throw_type(env, "gcmOpenSync: dst must be a Uint8Array");
  if (src_len < OVERHEAD) return throw_range(env, "gcmOpenSync: src is shorter than nonce and tag (28 bytes)");
  size_t len = src_len - OVERHEAD;
  if (len > GCM_MAX_PLAIN) return throw_range(env, "gcmOpenSync: src is too large for one AES-GCM message");
  if (dst_len < len) return throw_range(env, "gcmOpenSync: dst is shorter than the plaintext (src.length - 28 bytes)");
  unsigned char k[KEY_LEN], iv[NONCE_LEN], tag[TAG_LEN];
  memcpy(k, key, KEY_LEN);
  memcpy(iv, src, NONCE_LEN);
  memcpy(tag, src + NONCE_LEN + len, TAG_LEN);
  const unsigned char *ct = src + NONCE_LEN;
  /* Overlapping (other than dst exactly at the ciphertext): the ciphertext is moved to dst first, then decrypted in place. */
  if (ranges_overlap(dst, len, src, src_len) && dst != ct) {
    memmove(dst, ct, len);
    ct = dst;
  }
  const char *what = NULL;
  open_result r = gcm_open_slot(&st->open, k, iv, tag, ct, len, dst, &what);
  wipe(k, KEY_LEN);
  if (r == OPEN_FAILED) return throw_crypto(env, "gcmOpenSync", what);
  napi_value b;
  napi_get_boolean(env, r == OPEN_OK, &b);
  return b;
}

/* hmacSha256Sync(key, data, out) -> undefined */
static napi_value hmac_sha256_sync(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  sync_state *st = sync_args(env, info, 3, argv);
  if (!st) return NULL;
  unsigned char *key, *data, *out, k[KEY_LEN], mac[MAC_LEN];
  size_t key_len, len, out_len;
  if (!get_bytes(env, argv[0], &key, &key_len) || key_len != KEY_LEN) return throw_type(env, "hmacSha256Sync: key must be a Uint8Array of 32 bytes");
  if (!get_bytes(env, argv[1], &data, &len)) return throw_type(env, "hmacSha256Sync: data must be a Uint8Array");
  if (!get_bytes(env, argv[2], &out, &out_len)) return throw_type(env, "hmacSha256Sync: out must be a Uint8Array");
  if (out_len < MAC_LEN) return throw_range(env, "hmacSha256Sync: out must have at least 32 bytes");
  memcpy(k, key, KEY_LEN);
  bool ok = hmac_sync(st, k, data, len, mac);
  wipe(k, KEY_LEN);
  if (!ok) return throw_crypto(env, "hmacSha256Sync", "HMAC");
  memcpy(out, mac, MAC_LEN); /* after reading all of data: out may overlap it */
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

/* The environment is going away (its thread ends): free its contexts and wipe the keys they kept. */
static void sync_state_free(void *arg) {
  sync_state *st = (sync_state *)arg;
  sync_state_clear(st);
  free(st);
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
  /* The synchronous calls: their kept contexts belong to this environment (this thread), freed with it. */
  sync_state *st = calloc(1, sizeof *st);
  if (!st) return;
  if (napi_add_env_cleanup_hook(env, sync_state_free, st) != napi_ok) {
    free(st);
    return;
  }
  napi_property_descriptor sync_props[] = {
    {"gcmSealSync", NULL, gcm_seal_sync, NULL, NULL, NULL, napi_enumerable, st},
    {"gcmOpenSync", NULL, gcm_open_sync, NULL, NULL, NULL, napi_enumerable, st},
    {"hmacSha256Sync", NULL, hmac_sha256_sync, NULL, NULL, NULL, napi_enumerable, st},
  };
  napi_define_properties(env, exports, sizeof sync_props / sizeof sync_props[0], sync_props);
}
