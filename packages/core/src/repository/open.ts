/**
 * Creating and opening a repository (its config and key files), and managing its key files.
 * {@link Repository.init} and {@link Repository.open} build the repository object from what
 * {@link createRepository} and {@link openRepository} return.
 */
import { randomBytes } from 'node:crypto';
import { AuthenticationError } from '../crypto/aead.js';
import { DEFAULT_KDF, MasterKeys, bytesEqual, createKeyFile, openKeyFile, parseKeyFile, sha256Hex, type KdfParams } from '../crypto/keys.js';
import { clearPrederived } from '../crypto/prederived.js';
import { DEFAULT_COMPRESSION_LEVEL } from '../compression/zstd.js';
import type { Handle, Storage } from '../storage/types.js';
import { REPOSITORY_VERSION, validateConfig } from './decode.js';
import { IntegrityError, RepositoryConfigMissingError, RepositoryExistsError, RepositoryNotFoundError, WrongPasswordError } from './errors.js';
import { DEFAULT_CHUNKER, DEFAULT_PACK_SIZE, type InitOptions, type RepositoryOptions } from './options.js';
import type { KeyInfo, RepositoryConfig, RepositoryLogger } from './types.js';
import { loadWholeFile } from './whole-file.js';
import { compareTimes } from '../time-order.js';

const CONFIG_HANDLE = { type: 'config', name: 'config' } as const satisfies Handle;

/** The scrypt salt and parameters of a key file (nothing secret). */
export interface KeyKdf {
  salt: string;
  N: number;
  r: number;
  p: number;
}

/**
 * Which of a repository's kinds of files a location without a config holds (`keys/`, `snapshots/`,
 * `index/`, `data/`): each listing stops at its first file.
 */
async function repositoryFilesPresent(storage: Storage, keysKnown?: number): Promise<string[]> {
  const found: string[] = [];
  for (const [type, dir] of [['key', 'keys/'], ['snapshot', 'snapshots/'], ['index', 'index/'], ['data', 'data/']] as const) {
    if (type === 'key' && keysKnown !== undefined) {
      if (keysKnown > 0) found.push(dir);
      continue;
    }
    try {
      for await (const _ of storage.list(type)) {
        found.push(dir);
        break;
      }
    } catch (err) {
      if (!storage.isNotFound(err)) throw err;
    }
  }
  return found;
}

export async function listNames(storage: Storage, type: 'key' | 'snapshot' | 'index' | 'lock' | 'data'): Promise<string[]> {
  const names: string[] = [];
  for await (const f of storage.list(type)) names.push(f.name);
  return names;
}

/** The files of a type with their sizes (what a reader checks before it loads one), sorted by name. */
export async function listFiles(storage: Storage, type: 'key' | 'snapshot' | 'index' | 'lock' | 'data'): Promise<Array<{ name: string; size: number }>> {
  const out: Array<{ name: string; size: number }> = [];
  for await (const f of storage.list(type)) out.push({ name: f.name, size: f.size });
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Write a new repository's key file and config (`init`). Fails with {@link RepositoryExistsError}
 * when `config` exists. `from` is the config and blob id key of `opts.sameChunkerAs`, if given.
 */
export async function createRepository(
  storage: Storage,
  password: string | Uint8Array,
  opts: InitOptions,
  from: { config: RepositoryConfig; idKey: Buffer } | undefined,
): Promise<{ config: RepositoryConfig; keys: MasterKeys; keyId: string }> {
  await storage.create();
  try {
    await storage.stat(CONFIG_HANDLE);
    throw new RepositoryExistsError(storage.location);
  } catch (err) {
    if (!storage.isNotFound(err)) throw err;
  }
  // No config, but a repository's files: its config is missing. A new repository here would hide
  // the old one's data behind a second key file and a different config.
  const present = await repositoryFilesPresent(storage);
  if (present.length > 0) throw new RepositoryConfigMissingError(storage.location, present);
  const chunker = from ? { minSize: from.config.chunker.minSize, avgSize: from.config.chunker.avgSize, maxSize: from.config.chunker.maxSize } : { ...DEFAULT_CHUNKER, ...opts.chunker };
  if (!(chunker.minSize > 0 && chunker.minSize <= chunker.avgSize && chunker.avgSize <= chunker.maxSize)) {
    throw new RangeError(`invalid chunker sizes: need 0 < minSize <= avgSize <= maxSize (got ${chunker.minSize}/${chunker.avgSize}/${chunker.maxSize})`);
  }
  const packSize = opts.packSize ?? DEFAULT_PACK_SIZE;
  if (!Number.isInteger(packSize) || packSize < 1024 || packSize > 1024 * 1024 * 1024) throw new RangeError(`invalid packSize ${packSize}`);
  const config: RepositoryConfig = {
    version: REPOSITORY_VERSION,
    id: randomBytes(32).toString('hex'),
    chunker: { ...chunker, seed: from ? from.config.chunker.seed : randomBytes(32).toString('base64') },
    compression: { algorithm: 'zstd', level: opts.compressionLevel ?? DEFAULT_COMPRESSION_LEVEL },
    packSize,
  };
  validateConfig(config);
  const generated = MasterKeys.generate();
  const keys = from ? new MasterKeys(generated.encKey, Buffer.from(from.idKey)) : generated;
  if (from) generated.idKey.fill(0);
  const key = await createKeyFile(keys, password, keyFileOptions(opts));
  await storage.save({ type: 'key', name: key.id }, key.bytes);
  // The config is written last: its presence means "a complete repository".
  await storage.save(CONFIG_HANDLE, keys.encrypt(Buffer.from(JSON.stringify(config), 'utf8')));
  return { config, keys, keyId: key.id };
}

/**
 * Read the config and open a key file with `password` (`open`): {@link RepositoryNotFoundError}
 * when there is no `config`, {@link WrongPasswordError} when the password opens no key file.
 */
export async function openRepository(
  storage: Storage,
  password: string | Uint8Array,
  log: RepositoryLogger,
): Promise<{ config: RepositoryConfig; keys: MasterKeys; keyId: string; kdf: KeyKdf | undefined }> {
  // The config's size and the key listing are read at once, then the config while the key files
  // are read (as many round trips as loading the config at once did); a missing config still
  // decides the error.
  const keysListed = listFiles(storage, 'key');
  keysListed.catch(() => undefined); // awaited below, unless the config fails first
  const notFound = async (err: unknown): Promise<never> => {
    const keys = await keysListed.catch(() => []);
    const present = await repositoryFilesPresent(storage, keys.length);
    if (present.length > 0) throw new RepositoryConfigMissingError(storage.location, present, { cause: err });
    throw new RepositoryNotFoundError(storage.location, { cause: err });
  };
  let configSize: number;
  try {
    configSize = (await storage.stat(CONFIG_HANDLE)).size;
  } catch (err) {
    if (storage.isNotFound(err)) return notFound(err);
    throw err;
  }
  const configRead = loadWholeFile(storage, CONFIG_HANDLE, configSize);
  configRead.catch(() => undefined); // awaited once a key file opened
  const names = await keysListed;
  if (names.length === 0) throw new IntegrityError(`repository at ${storage.location} has a config but no key files (keys/)`, { file: 'keys/' });
  let keys: MasterKeys | null = null;
  let keyId = '';
  let kdf: KeyKdf | undefined;
  let tried = 0;
  const damaged: string[] = [];
  try {
    for (const { name, size } of names) {
      let file;
      try {
        const bytes = await loadWholeFile(storage, { type: 'key', name }, size);
        // A key file is named by its SHA-256: one that does not match is damaged, not a wrong password.
        if (sha256Hex(bytes) !== name) {
          damaged.push(`keys/${name}`);
          log.warn(`skipping damaged key file keys/${name}: its content does not match its name (SHA-256)`);
          continue;
        }
        file = parseKeyFile(bytes, `keys/${name}`);
      } catch (err) {
        if (storage.isNotFound(err)) continue;
        log.warn(`skipping unreadable key file: ${(err as Error).message}`);
        continue;
      }
      tried++;
      keys = await openKeyFile(file, password);
      if (keys) {
        keyId = name;
        kdf = { salt: file.salt, N: file.N, r: file.r, p: file.p };
        break;
      }
    }
  } finally {
    clearPrederived();
  }
  if (!keys && tried === 0) {
    throw new IntegrityError(
      `repository at ${storage.location}: ${names.length === 1 ? 'its key file is not readable' : `none of its ${names.length} key files is readable`}` +
        (damaged.length > 0 ? ` (${damaged.join(', ')} damaged: its content does not match its name); put back a copy of the key file` : ''),
      { file: damaged[0] ?? 'keys/' },
    );
  }
  if (!keys) throw new WrongPasswordError(storage.location, tried, damaged);
  let configBytes: Buffer;
  try {
    configBytes = await configRead;
  } catch (err) {
    keys.zero();
    if (storage.isNotFound(err)) return notFound(err); // removed since the stat
    throw err;
  }
  let config: RepositoryConfig;
  try {
    const plain = keys.decrypt(configBytes);
    config = validateConfig(JSON.parse(plain.toString('utf8')));
    plain.fill(0);
  } catch (err) {
    keys.zero();
    if (err instanceof IntegrityError) throw err;
    const why = err instanceof AuthenticationError ? 'authentication failed (damaged, or not this repository\'s config)' : (err as Error).message;
    throw new IntegrityError(`config: ${why}`, { file: 'config', cause: err });
  }
  return { config, keys, keyId, kdf };
}

// ---------------------------------------------------------------- key files

/** Add a key file for another password. Returns its id (`keys/<id>`). */
export async function addKeyFile(storage: Storage, keys: MasterKeys, password: string | Uint8Array, opts: RepositoryOptions & { kdf?: KdfParams }): Promise<string> {
  const key = await createKeyFile(keys, password, keyFileOptions(opts));
  const handle = { type: 'key' as const, name: key.id };
  await storage.save(handle, key.bytes);
  // Read back and opened with the new password before anyone relies on it: `key passwd` removes the
  // old key next, and a key file the storage damaged (a bad disk, a broken gateway) would then leave
  // no key that opens the repository.
  let problem: string | undefined;
  try {
    const stored = await loadWholeFile(storage, handle, key.bytes.byteLength);
    if (sha256Hex(stored) !== key.id) problem = 'its stored bytes differ from those written';
    else {
      const opened = await openKeyFile(parseKeyFile(stored, `keys/${key.id}`), password);
      if (!opened) problem = 'the new password does not open it';
      else {
        const same = bytesEqual(opened.encKey, keys.encKey) && bytesEqual(opened.idKey, keys.idKey);
        opened.zero();
        if (!same) problem = 'it holds other keys';
      }
    }
  } catch (err) {
    problem = `it cannot be read back: ${(err as Error).message}`;
  }
  if (problem) {
    await storage.remove(handle).catch(() => undefined);
    throw new IntegrityError(`the new key file keys/${key.id} did not verify (${problem}); it was removed, and the repository's keys are as before`, { file: `keys/${key.id}` });
  }
  return key.id;
}

/** The repository's key files; `currentKeyId` is the one it was opened with. */
export async function listKeyFiles(storage: Storage, currentKeyId: string): Promise<KeyInfo[]> {
  const out: KeyInfo[] = [];
  for (const { name, size } of await listFiles(storage, 'key')) {
    try {
      const f = parseKeyFile(await loadWholeFile(storage, { type: 'key', name }, size), `keys/${name}`);
      out.push({ id: name, created: f.created, hostname: f.hostname, username: f.username, current: name === currentKeyId });
    } catch (err) {
      if (storage.isNotFound(err)) continue; // removed meanwhile
      // Listed as damaged, not a failure of the whole list: opening skips such a file, and `key remove`
      // must be able to name it. (A storage failure still fails the list.)
      if ((err as Error).name === 'StorageError' && (err as { kind?: string }).kind !== 'integrity') throw err;
      out.push({ id: name, created: '', hostname: '', username: '', current: false, damaged: (err as Error).message.slice(0, 200) });
    }
  }
  return out.sort((a, b) => compareTimes(a.created, b.created));
}

/** Remove a key file. Refuses to remove the last one. `id` may be a unique prefix. */
export async function removeKeyFile(storage: Storage, id: string): Promise<void> {
  const names = await listNames(storage, 'key');
  const matches = names.filter((n) => n.startsWith(id));
  if (matches.length === 0) throw new Error(`no key file keys/${id}* in ${storage.location}`);
  if (matches.length > 1) throw new Error(`key id prefix ${id} is ambiguous: ${matches.join(', ')}`);
  if (names.length <= 1) throw new Error(`refusing to remove keys/${matches[0]}: it is the repository's only key`);
  await storage.remove({ type: 'key', name: matches[0]! });
}

function keyFileOptions(opts: RepositoryOptions) {
  return {
    kdf: opts.kdf ?? DEFAULT_KDF,
    ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
    ...(opts.username !== undefined ? { username: opts.username } : {}),
  };
}
