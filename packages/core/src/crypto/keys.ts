/**
 * Master keys and password-protected key files (`keys/<id>`).
 *
 * A repository has one set of master keys, created at `init`:
 * - `encKey` (32 bytes): AES-256-GCM key for every encrypted file and blob;
 * - `idKey` (32 bytes): HMAC-SHA-256 key that turns plaintext into blob ids.
 * Each key file holds these 64 bytes encrypted with a key derived from one password
 * by scrypt; a repository may have several key files (several passwords).
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { hostname as osHostname, userInfo } from 'node:os';
import { AuthenticationError, KEY_SIZE, OVERHEAD, decrypt, decryptAsync, encrypt } from './aead.js';
import { offloadFor } from './offload.js';
import { hmacSha256 } from './mac.js';
import { MAX_KEY_FILE_SIZE, MAX_SCRYPT_MEMORY, MAX_SCRYPT_WORK } from '../repository/limits.js';
import { takePrederived } from './prederived.js';

/** scrypt parameters. `N` is a power of two. */
export interface KdfParams {
  N: number;
  r: number;
  p: number;
}

/** Default KDF cost: N = 2^15, r = 8, p = 1 (32 MiB, ~0.1 s). */
export const DEFAULT_KDF: Readonly<KdfParams> = Object.freeze({ N: 2 ** 15, r: 8, p: 1 });

/** Format version of key files. */
export const KEY_FILE_VERSION = 1;

/** The JSON stored (unencrypted) in `keys/<sha256 of these bytes>`. */
export interface KeyFile {
  version: 1;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  /** 32 random bytes, base64. */
  salt: string;
  /** ISO 8601 creation time. */
  created: string;
  hostname: string;
  username: string;
  /** base64 of `nonce ‖ AES-256-GCM(kdfKey, encKey ‖ idKey) ‖ tag` (64 + 28 bytes). */
  data: string;
}

/** The repository's master key material. Call {@link MasterKeys.zero} when done. */
export class MasterKeys {
  readonly encKey: Buffer;
  readonly idKey: Buffer;
  constructor(encKey: Buffer, idKey: Buffer) {
    if (encKey.byteLength !== KEY_SIZE || idKey.byteLength !== KEY_SIZE) throw new TypeError('master keys must be 32 bytes each');
    this.encKey = encKey;
    this.idKey = idKey;
  }

  static generate(): MasterKeys {
    return new MasterKeys(randomBytes(KEY_SIZE), randomBytes(KEY_SIZE));
  }

  /** Blob id: HMAC-SHA-256(idKey, data), raw 32 bytes. */
  blobIdBytes(data: Uint8Array): Buffer {
    return hmacSha256(this.idKey, data);
  }

  /**
   * {@link blobIdBytes} on libuv's threadpool when `data` is large (see `offload.ts`), else on this
   * thread. `data` must not change until the promise settles.
   */
  async blobIdBytesAsync(data: Uint8Array): Promise<Buffer> {
    const native = offloadFor(data.byteLength, 'mac');
    if (!native) return this.blobIdBytes(data);
    const out = Buffer.allocUnsafe(32);
    await native.hmacSha256(this.idKey, data, out);
    return out;
  }

  /** Blob id: HMAC-SHA-256(idKey, data), lowercase hex. */
  blobId(data: Uint8Array): string {
    return hmacSha256(this.idKey, data).toString('hex');
  }

  encrypt(plaintext: Uint8Array): Buffer {
    return encrypt(this.encKey, plaintext);
  }

  decrypt(message: Uint8Array, out?: Uint8Array): Buffer {
    return decrypt(this.encKey, message, out);
  }

  /**
   * {@link decrypt} on libuv's threadpool when the message is large (see `offload.ts`), else on this
   * thread; the same results and errors ({@link AuthenticationError}). `message` and `out` must not
   * be changed or reused until the promise settles; `out` may be `message` itself (in place).
   */
  decryptAsync(message: Uint8Array, out?: Uint8Array): Promise<Buffer> {
    return decryptAsync(this.encKey, message, out);
  }

  /** Overwrite the key bytes with zeros; the object is unusable afterwards. */
  zero(): void {
    this.encKey.fill(0);
    this.idKey.fill(0);
  }
}

/**
 * Memory scrypt takes besides its 128 · N · r bytes: p blocks of 128 · r bytes and two more
 * (OpenSSL's accounting; the process measurably holds about twice the p blocks). Capped by validateKdf, so that
 * a key file cannot ask for gigabytes through p (N = 2, r = 1, p = 2^23 is within the work limit
 * and took 2 GiB), nor through r with a tiny N, which made scrypt itself refuse the parameters:
 * an error that stopped opening the repository instead of skipping the key file.
 */
const MAX_SCRYPT_EXTRA_MEMORY = 32 * 1024 * 1024;

function scrypt(password: Uint8Array, salt: Uint8Array, params: KdfParams): Promise<Buffer> {
  validateKdf(params);
  const { N, r, p } = params;
  // scrypt needs 128 · N · r bytes plus 128 · r · (p + 2); validateKdf caps both, so this is never short.
  const maxmem = 128 * N * r + 128 * r * p + MAX_SCRYPT_EXTRA_MEMORY;
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, KEY_SIZE, { N, r, p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function passwordBytes(password: string | Uint8Array): Buffer {
  return typeof password === 'string' ? Buffer.from(password, 'utf8') : Buffer.from(password);
}

/**
 * Check scrypt parameters: N a power of two, r and p positive integers, and — so that a key file
 * cannot make opening a repository allocate gigabytes or run for minutes — memory
 * 128 · N · r ≤ {@link MAX_SCRYPT_MEMORY} (256 MiB) plus 128 · r · (p + 2) ≤
 * {@link MAX_SCRYPT_EXTRA_MEMORY} (32 MiB), and work N · r · p ≤ {@link MAX_SCRYPT_WORK}
 * (64× the default, a few seconds).
 */
function validateKdf(params: KdfParams): void {
  const { N, r, p } = params;
  if (!Number.isSafeInteger(N) || N < 2 || 2 ** Math.round(Math.log2(N)) !== N) throw new TypeError(`scrypt N must be a power of two, got ${N}`);
  if (N > 2 ** 30) throw new TypeError(`scrypt N = 2^${Math.log2(N)} is above the limit of 2^30`);
  if (!Number.isSafeInteger(r) || r < 1 || !Number.isSafeInteger(p) || p < 1) throw new TypeError('scrypt r and p must be positive integers');
  if (128 * N * r > MAX_SCRYPT_MEMORY) {
    throw new TypeError(`scrypt N = ${N}, r = ${r} need ${(128 * N * r) / 2 ** 20} MiB of memory, more than the limit of ${MAX_SCRYPT_MEMORY / 2 ** 20} MiB`);
  }
  if (128 * r * (p + 2) > MAX_SCRYPT_EXTRA_MEMORY) {
    throw new TypeError(`scrypt r = ${r}, p = ${p} need ${Math.ceil((128 * r * (p + 2)) / 2 ** 20)} MiB of memory besides 128·N·r, more than the limit of ${MAX_SCRYPT_EXTRA_MEMORY / 2 ** 20} MiB`);
  }
  if (N * r * p > MAX_SCRYPT_WORK) throw new TypeError(`scrypt N = ${N}, r = ${r}, p = ${p} is more work (N·r·p) than the limit of 2^${Math.log2(MAX_SCRYPT_WORK)}`);
}

export interface CreateKeyFileOptions {
  kdf?: KdfParams;
  hostname?: string;
  username?: string;
  created?: Date;
}

/** Wrap `master` with `password`. Returns the key file and its exact stored bytes and id (SHA-256 of the bytes). */
export async function createKeyFile(
  master: MasterKeys,
  password: string | Uint8Array,
  options: CreateKeyFileOptions = {},
): Promise<{ id: string; bytes: Buffer; file: KeyFile }> {
  const kdf = options.kdf ?? DEFAULT_KDF;
  validateKdf(kdf);
  const salt = randomBytes(32);
  const pw = passwordBytes(password);
  const kdfKey = await scrypt(pw, salt, kdf);
  pw.fill(0);
  const plain = Buffer.concat([master.encKey, master.idKey]);
  let data: Buffer;
  try {
    data = encrypt(kdfKey, plain);
  } finally {
    plain.fill(0);
    kdfKey.fill(0);
  }
  const file: KeyFile = {
    version: KEY_FILE_VERSION,
    kdf: 'scrypt',
    N: kdf.N,
    r: kdf.r,
    p: kdf.p,
    salt: salt.toString('base64'),
    created: (options.created ?? new Date()).toISOString(),
    hostname: options.hostname ?? osHostname(),
    username: options.username ?? safeUsername(),
    data: data.toString('base64'),
  };
  const bytes = Buffer.from(JSON.stringify(file, null, 2) + '\n', 'utf8');
  return { id: sha256Hex(bytes), bytes, file };
}

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * A key file's value in a message: as JSON (newlines and other control characters escaped) and
 * short. The file is anyone's who can write the storage, and the message goes into warnings: its
 * text must not be able to add lines of its own there ("kiwi: added key …").
 */
function quoted(v: unknown): string {
  return String(JSON.stringify(v)).slice(0, 40);
}

/** Bytes that base64 text `s` decodes to, or undefined when it is not canonical base64. */
function base64Length(s: string): number | undefined {
  if (s.length % 4 !== 0 || !BASE64_RE.test(s)) return undefined;
  return (s.length / 4) * 3 - (s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0);
}

/**
 * Parse and validate a key file's bytes; throws a descriptive Error when malformed. Limits:
 * at most {@link MAX_KEY_FILE_SIZE} bytes; scrypt parameters as {@link validateKdf}; a salt of
 * 16–64 bytes; `data` exactly the 92 bytes of wrapped master keys; informational strings at
 * most 256 characters.
 */
export function parseKeyFile(bytes: Uint8Array, where: string): KeyFile {
  if (bytes.byteLength > MAX_KEY_FILE_SIZE) throw new Error(`${where}: ${bytes.byteLength} bytes, more than a key file may have (${MAX_KEY_FILE_SIZE})`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw new Error(`${where}: not valid JSON`);
  }
  const f = v as Partial<KeyFile>;
  if (typeof f !== 'object' || f === null) throw new Error(`${where}: not a JSON object`);
  if (f.version !== KEY_FILE_VERSION) throw new Error(`${where}: unsupported key file version ${quoted(f.version)}`);
  if (f.kdf !== 'scrypt') throw new Error(`${where}: unsupported kdf ${quoted(f.kdf)}`);
  for (const k of ['N', 'r', 'p'] as const) {
    if (typeof f[k] !== 'number') throw new Error(`${where}: missing or invalid ${k}`);
  }
  try {
    validateKdf({ N: f.N!, r: f.r!, p: f.p! });
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
  for (const k of ['salt', 'data'] as const) {
    if (typeof f[k] !== 'string') throw new Error(`${where}: missing or invalid ${k}`);
  }
  const saltLen = base64Length(f.salt!);
  if (saltLen === undefined || saltLen < 16 || saltLen > 64) throw new Error(`${where}: salt must be 16 to 64 bytes of base64`);
  if (base64Length(f.data!) !== 2 * KEY_SIZE + OVERHEAD) throw new Error(`${where}: data must be ${2 * KEY_SIZE + OVERHEAD} bytes of base64`);
  for (const k of ['created', 'hostname', 'username'] as const) {
    if (f[k] !== undefined && (typeof f[k] !== 'string' || f[k].length > 256)) throw new Error(`${where}: ${k} must be a string of at most 256 characters`);
  }
  return { ...(f as KeyFile), created: f.created ?? '', hostname: f.hostname ?? '', username: f.username ?? '' };
}

/**
 * Unwrap the master keys of `file` with `password`. Resolves `null` when the password
 * does not open this key file (authentication failure).
 */
export async function openKeyFile(file: KeyFile, password: string | Uint8Array): Promise<MasterKeys | null> {
  const pw = passwordBytes(password);
  const params = { N: file.N, r: file.r, p: file.p };
  validateKdf(params);
  const kdfKey = (await takePrederived(file.salt, params, KEY_SIZE, pw)) ?? (await scrypt(pw, Buffer.from(file.salt, 'base64'), params));
  pw.fill(0);
  let plain: Buffer;
  try {
    plain = decrypt(kdfKey, Buffer.from(file.data, 'base64'));
  } catch (err) {
    if (err instanceof AuthenticationError) return null;
    throw err;
  } finally {
    kdfKey.fill(0);
  }
  if (plain.byteLength !== 2 * KEY_SIZE) {
    plain.fill(0);
    throw new Error(`key file holds ${plain.byteLength} bytes of key material, expected ${2 * KEY_SIZE}`);
  }
  const keys = new MasterKeys(Buffer.from(plain.subarray(0, KEY_SIZE)), Buffer.from(plain.subarray(KEY_SIZE)));
  plain.fill(0);
  return keys;
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Constant-time comparison of two equal-length byte arrays. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

export function safeUsername(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? process.env.USERNAME ?? 'unknown';
  }
}
