/** Errors of the repository engine. Each names what failed and where. */

/** No repository (no `config` file) at the storage location. */
export class RepositoryNotFoundError extends Error {
  readonly location: string;
  constructor(location: string, options?: { cause?: unknown }) {
    super(`no repository at ${location} (config file not found)`, options);
    this.name = 'RepositoryNotFoundError';
    this.location = location;
  }
}

/** `init` on a location that already holds a repository. */
export class RepositoryExistsError extends Error {
  readonly location: string;
  constructor(location: string) {
    super(`a repository already exists at ${location}`);
    this.name = 'RepositoryExistsError';
    this.location = location;
  }
}

/**
 * The location holds a repository's files (key files, snapshots, index files or packs) but no
 * `config`: its config file is missing. Opening it fails with this, and so does `init`, which
 * would otherwise make a new, different repository over the old one's data.
 */
export class RepositoryConfigMissingError extends Error {
  readonly location: string;
  constructor(location: string, found: string[], options?: { cause?: unknown }) {
    super(
      `the repository at ${location} has no config file, but holds a repository's files (${found.join(', ')}): its config is missing. ` +
        'Do not run `kiwi init` there (that would make a new, different repository over this one): put the `config` file back from a copy of the repository. ' +
        '(If only keys/ holds files, an interrupted `kiwi init` left them: remove keys/ and run init again.)',
      options,
    );
    this.name = 'RepositoryConfigMissingError';
    this.location = location;
  }
}

/** The password opens none of the repository's key files. */
export class WrongPasswordError extends Error {
  readonly location: string;
  constructor(location: string, keysTried: number, damagedKeys: string[] = []) {
    super(
      `wrong password: it ${keysTried === 1 ? 'does not open the key file' : `opens none of the ${keysTried} key files`} of the repository at ${location}` +
        (damagedKeys.length > 0
          ? ` that can be read; ${damagedKeys.join(', ')} ${damagedKeys.length === 1 ? 'is' : 'are'} damaged (content does not match the name): if this password's key was there, put back a copy of that file`
          : ''),
    );
    this.name = 'WrongPasswordError';
    this.location = location;
  }
}

/** Who holds a lock: the decrypted lock file and its storage path. */
export interface LockHolder {
  hostname: string;
  pid: number;
  username: string;
  time: string;
  exclusive: boolean;
  file: string;
}

const describeHolder = (h: LockHolder): string =>
  `${h.exclusive ? 'an exclusive' : 'a shared'} lock is held by pid ${h.pid} on ${h.hostname} (user ${h.username}, since ${h.time}, ${h.file})`;

/** Another process holds a conflicting lock (after waiting, when the caller asked to wait). */
export class LockHeldError extends Error {
  /** The first conflicting lock. */
  readonly holder: LockHolder;
  /** Every conflicting lock seen at the last attempt. */
  readonly holders: LockHolder[];
  /** How long the caller waited before giving up (0: it did not wait). */
  readonly waitedMs: number;
  constructor(holder: LockHolder, wanted: 'shared' | 'exclusive', options: { others?: LockHolder[]; waitedMs?: number } = {}) {
    const others = options.others ?? [];
    const waited = options.waitedMs ?? 0;
    super(
      `repository is locked: ${describeHolder(holder)}` +
        others.map((h) => `; also ${describeHolder(h)}`).join('') +
        `; cannot take ${wanted === 'exclusive' ? 'an exclusive' : 'a shared'} lock` +
        (waited > 0 ? ` (gave up after waiting ${formatWait(waited)})` : ''),
    );
    this.name = 'LockHeldError';
    this.holder = holder;
    this.holders = [holder, ...others];
    this.waitedMs = waited;
  }
}

/** `45 s`, `5 min`, `1 h 30 min`. */
export function formatWait(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  const m = Math.round(s / 60);
  return m < 120 ? `${m} min` : `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ''}`;
}

/** Stored bytes are damaged or not what they claim: a failed authentication, a wrong hash, a malformed structure. */
export class IntegrityError extends Error {
  /** Storage path of the damaged file (e.g. `data/ab/ab12…`), when known. */
  readonly file: string | undefined;
  /** The blob concerned, when known. */
  readonly blobId: string | undefined;
  constructor(message: string, where: { file?: string; blobId?: string; cause?: unknown } = {}) {
    super(message, where.cause === undefined ? undefined : { cause: where.cause });
    this.name = 'IntegrityError';
    this.file = where.file;
    this.blobId = where.blobId;
  }
}

/** No snapshot matches a reference, or a prefix matches several. */
export class SnapshotNotFoundError extends Error {
  readonly ref: string;
  /** Ids that matched an ambiguous prefix (empty when none matched). */
  readonly candidates: string[];
  constructor(ref: string, candidates: string[] = [], detail?: string) {
    super(
      candidates.length > 1
        ? `snapshot reference ${JSON.stringify(ref)} is ambiguous; it matches: ${candidates.join(', ')}`
        : `no snapshot matches ${JSON.stringify(ref)}${detail ? ` ${detail}` : ''}`,
    );
    this.name = 'SnapshotNotFoundError';
    this.ref = ref;
    this.candidates = candidates;
  }
}

/** A blob that is not in the index (nor pending in an open pack). */
export class BlobNotFoundError extends Error {
  readonly blobId: string;
  constructor(type: string, id: string) {
    super(`${type} blob ${id} is not in the repository index`);
    this.name = 'BlobNotFoundError';
    this.blobId = id;
  }
}
