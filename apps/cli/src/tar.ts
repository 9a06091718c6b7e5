/**
 * Snapshot nodes as a tar stream (`kiwi dump` of a directory), written with `tar-stream`.
 *
 * tar-stream writes POSIX ustar headers and falls back to a PAX header for what ustar cannot hold
 * (names over 100/155 bytes, non-ASCII names, link targets over 100 bytes). On top of that, this
 * file puts in PAX records what would silently overflow a ustar field: owner and group names over
 * 31 bytes, uid/gid over 2,097,151, and mtimes before 1970 or after 2242. File sizes over 8 GiB
 * use the base-256 size field (GNU tar, bsdtar and Python's tarfile read it).
 *
 * tar-stream is pinned to 3.1.7: later versions add `bare-fs` and its relatives for the Bare
 * runtime (6.5 MB in node_modules that Node never loads, against 0.4 MB for the whole library);
 * the tar format code is the same.
 *
 * Names that are not valid UTF-8 are written with U+FFFD in place of the bad bytes (PAX paths are
 * UTF-8); the entry is still there, with its content.
 */
import tar from 'tar-stream';
import type { Node } from '@kiwi-backup/core';

/** A tar header as tar-stream takes it, with its PAX records. */
export type TarHeader = tar.Headers & { pax?: Record<string, string> };

const USTAR_ID_MAX = 0o7777777;
const USTAR_NAME_MAX = 31;
/** Largest mtime (seconds) an 11-digit octal field holds. */
const USTAR_TIME_MAX = 0o77777777777;

/** Major and minor number of a Linux device number (glibc's encoding). */
export function deviceNumbers(rdev: string | undefined): { devmajor: number; devminor: number } {
  let r: bigint;
  try {
    r = BigInt(rdev ?? '0');
  } catch {
    r = 0n;
  }
  const major = ((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn);
  const minor = (r & 0xffn) | ((r >> 12n) & ~0xffn);
  return { devmajor: Number(major & 0x1fffffn), devminor: Number(minor & 0x1fffffn) };
}

const TYPES: Partial<Record<Node['type'], tar.Headers['type']>> = {
  file: 'file',
  dir: 'directory',
  symlink: 'symlink',
  fifo: 'fifo',
  chardev: 'character-device',
  blockdev: 'block-device',
};

/**
 * The tar header of a node named `name` in the archive, or undefined for what tar cannot hold
 * (sockets). `hardLinkTo`: an earlier entry this one is a hard link of (then it has no content).
 */
export function tarHeader(name: string, node: Node, hardLinkTo?: string): TarHeader | undefined {
  const type = TYPES[node.type];
  if (!type) return undefined;
  const pax: Record<string, string> = {};
  let mtimeNs: bigint;
  try {
    mtimeNs = BigInt(node.mtimeNs);
  } catch {
    mtimeNs = 0n;
  }
  let seconds = Number(mtimeNs / 1_000_000_000n);
  if (seconds < 0 || seconds > USTAR_TIME_MAX) {
    pax.mtime = String(seconds);
    seconds = Math.min(Math.max(seconds, 0), USTAR_TIME_MAX);
  }
  const h: TarHeader = {
    name,
    type: hardLinkTo !== undefined ? 'link' : type,
    mode: node.mode & 0o7777,
    uid: node.uid,
    gid: node.gid,
    mtime: new Date(seconds * 1000),
    size: hardLinkTo === undefined && node.type === 'file' ? node.size : 0,
  };
  if (hardLinkTo !== undefined) h.linkname = hardLinkTo;
  else if (node.type === 'symlink') h.linkname = node.linkTarget ?? '';
  if (node.type === 'chardev' || node.type === 'blockdev') Object.assign(h, deviceNumbers(node.rdev));
  for (const [field, value] of [
    ['uid', node.uid],
    ['gid', node.gid],
  ] as const) {
    if (!Number.isInteger(value) || value < 0 || value > USTAR_ID_MAX) {
      h[field] = 0;
      if (Number.isInteger(value) && value >= 0) pax[field] = String(value);
    }
  }
  for (const [field, value] of [
    ['uname', node.user],
    ['gname', node.group],
  ] as const) {
    if (value === undefined || value === '') continue;
    if (Buffer.byteLength(value) > USTAR_NAME_MAX || /[^\x20-\x7e]/.test(value)) pax[field] = value;
    else h[field] = value;
  }
  if (Object.keys(pax).length > 0) h.pax = pax;
  return h;
}

/**
 * A tar stream fed entry by entry, its bytes handed to `write` (which may return a promise:
 * back-pressure). A failing `write` (a broken pipe) fails the next call here with its error.
 */
export class TarWriter {
  readonly #pack = tar.pack();
  readonly #consumed: Promise<void>;
  /** Rejects when the consumer failed (never resolves otherwise). */
  readonly #failed: Promise<never>;
  #sink: NodeJS.WritableStream | undefined;
  #entryDone: Promise<void> | undefined;

  constructor(write: (chunk: Buffer) => void | Promise<void>) {
    this.#consumed = (async () => {
      for await (const chunk of this.#pack) await write(chunk as Buffer);
    })();
    this.#failed = this.#consumed.then(
      () => new Promise<never>(() => undefined),
      (err: unknown) => {
        throw err;
      },
    );
    this.#failed.catch(() => undefined);
  }

  /** Start an entry (the previous one must be ended). */
  begin(header: TarHeader): void {
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    this.#entryDone = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#entryDone.catch(() => undefined);
    this.#sink = this.#pack.entry(header, (err) => (err ? reject(err) : resolve()));
  }

  /** Content of the current entry. */
  async write(data: Buffer): Promise<void> {
    const sink = this.#sink!;
    if (!sink.write(data)) {
      await Promise.race([new Promise<void>((res) => sink.once('drain', () => res())), this.#failed]);
    }
  }

  /** End the current entry and wait until tar-stream took it. */
  async end(): Promise<void> {
    const sink = this.#sink!;
    this.#sink = undefined;
    sink.end();
    await Promise.race([this.#entryDone, this.#failed]);
  }

  /** Write the end-of-archive blocks and wait until every byte was handed to `write`. */
  async finish(): Promise<void> {
    this.#pack.finalize();
    await this.#consumed;
  }

  /** Stop (after an error): no more bytes are written. */
  async abort(err: Error): Promise<void> {
    this.#pack.destroy(err);
    await this.#consumed.catch(() => undefined);
  }
}
