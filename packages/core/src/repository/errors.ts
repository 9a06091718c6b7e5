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

/** The password opens none of the repository's key files. */
export class WrongPasswordError extends Error {
  readonly location: string;
  constructor(location: string, keysTried: number) {
    super(`wrong password: it opens none of the ${keysTried} key file(s) of the repository at ${location}`);
    this.name = 'WrongPasswordError';
    this.location = location;
  }
}

/** Another process holds a conflicting lock. */
export class LockHeldError extends Error {
  readonly holder: { hostname: string; pid: number; username: string; time: string; exclusive: boolean; file: string };
  constructor(holder: LockHeldError['holder'], wanted: 'shared' | 'exclusive') {
    super(
      `repository is locked: ${holder.exclusive ? 'an exclusive' : 'a shared'} lock is held by pid ${holder.pid} on ${holder.hostname}` +
        ` (user ${holder.username}, since ${holder.time}, ${holder.file}); cannot take ${wanted === 'exclusive' ? 'an exclusive' : 'a shared'} lock`,
    );
    this.name = 'LockHeldError';
    this.holder = holder;
  }
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
