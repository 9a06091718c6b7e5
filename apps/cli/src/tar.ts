/**
 * Snapshot nodes as a tar stream (`kiwi dump` of a directory), written with `tar-stream`.
 *
 * tar-stream writes POSIX ustar headers and falls back to a PAX header for what ustar cannot hold
 * (names over 100/155 bytes, non-ASCII names, link targets over 100 bytes). On top of that, this
 * file puts in PAX records what would silently overflow a ustar field: owner and group names over
 * 31 bytes, uid/gid over 2,097,151, and mtimes before 1970 or after 2038 (exact to the nanosecond,
 * as a decimal). File sizes over 8 GiB use the base-256 size field (GNU tar, bsdtar and Python's
 * tarfile read it).
 *
 * tar-stream is pinned to 3.1.7: later versions add `bare-fs` and its relatives for the Bare
 * runtime (6.5 MB in node_modules that Node never loads, against 0.4 MB for the whole library);
 * the tar format code is the same.
 *
 * Names and symlink targets that are not valid UTF-8 keep their bytes: their PAX header is written
 * here (tar-stream writes PAX values as UTF-8 strings) with `hdrcharset=BINARY` and the raw bytes, as
 * GNU tar does; GNU tar, bsdtar and Python's tarfile read them back byte for byte. (Before, they had
 * U+FFFD in place of the bad bytes, and two names differing only there overwrote each other.)
 */
import tar from 'tar-stream';
import type { Node } from '@kiwi-backup/core';

/**
 * A tar header as tar-stream takes it, with its PAX records; or, with `rawPax`, a header whose name
 * and link fields are placeholders and whose PAX header (raw bytes) {@link TarWriter} writes first.
 */
export type TarHeader = tar.Headers & { pax?: Record<string, string>; rawPax?: Buffer };

/** Raw bytes of an entry's archive name and of the earlier entry it is a hard link of. */
export interface RawNames {
  name: Buffer;
  hardLinkTo?: Buffer;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function isUtf8(b: Buffer): boolean {
  try {
    utf8.decode(b);
    return true;
  } catch {
    return false;
  }
}

/** One PAX record, `<length> <key>=<value>\n`, the length counting its own digits. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/**
 * A PAX extended header (typeflag `x`) holding `records`, with its padding: the 512-byte ustar
 * header block and the records in 512-byte blocks. (tar-stream takes no body for such an entry.)
 */
export function paxHeaderBlocks(records: Buffer, mtimeSeconds: number): Buffer {
  const out = Buffer.alloc(512 + Math.ceil(records.length / 512) * 512);
  const octal = (value: number, width: number, at: number) => out.write(`${value.toString(8).padStart(width - 1, '0')}\0`, at, 'latin1');
  out.write('PaxHeader', 0, 'latin1');
  octal(0o644, 8, 100);
  octal(0, 8, 108);
  octal(0, 8, 116);
  octal(records.length, 12, 124);
  octal(Math.min(Math.max(Math.floor(mtimeSeconds), 0), USTAR_TIME_MAX), 12, 136);
  out.write(' '.repeat(8), 148, 'latin1');
  out.write('x', 156, 'latin1');
  out.write('ustar\0' + '00', 257, 'latin1');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[i]!;
  out.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  records.copy(out, 512);
  return out;
}

/** A time in nanoseconds as a PAX decimal (seconds, a fraction when there is one). */
function paxTime(ns: bigint): string {
  const neg = ns < 0n;
  const abs = neg ? -ns : ns;
  const whole = abs / 1_000_000_000n;
  const frac = (abs % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}

const USTAR_ID_MAX = 0o7777777;
const USTAR_NAME_MAX = 31;
/**
 * Largest mtime (seconds) put in the ustar field: 2038-01-19. The field holds up to 0o77777777777,
 * but tar-stream writes it through a 32-bit `| 0` (later times came out as "-1"); PAX records
 * carry every later time exactly.
 */
const USTAR_TIME_MAX = 0x7fffffff;

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
export function tarHeader(name: string, node: Node, hardLinkTo?: string, raw?: RawNames): TarHeader | undefined {
  const type = TYPES[node.type];
  if (!type) return undefined;
  const pax: Record<string, string> = {};
  let mtimeNs: bigint;
  try {
    mtimeNs = BigInt(node.mtimeNs);
  } catch {
    mtimeNs = 0n;
  }
  // Whole seconds, rounded down (BigInt division rounds toward zero).
  let secondsBig = mtimeNs / 1_000_000_000n;
  if (mtimeNs < 0n && mtimeNs % 1_000_000_000n !== 0n) secondsBig -= 1n;
  let seconds = Number(secondsBig);
  if (seconds < 0 || seconds > USTAR_TIME_MAX) {
    pax.mtime = paxTime(mtimeNs);
    seconds = Math.min(Math.max(seconds, 0), USTAR_TIME_MAX);
  }
  const h: TarHeader = {
    name,
    type: hardLinkTo !== undefined ? 'link' : type,
    // tar-stream replaces a mode of 0 (falsy) with 0644/0755: a bit above the 12 it writes keeps 0 as 0.
    mode: node.mode & 0o7777 || 0o10000,
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
  const rawLink = hardLinkTo !== undefined ? raw?.hardLinkTo : node.type === 'symlink' && node.linkTargetRaw !== undefined ? Buffer.from(node.linkTargetRaw, 'base64') : undefined;
  if (raw && (!isUtf8(raw.name) || (rawLink !== undefined && !isUtf8(rawLink)))) {
    // Bytes that are not UTF-8: the whole PAX header is written here, raw (see the top of this file).
    const records = [paxRecord('hdrcharset', Buffer.from('BINARY')), paxRecord('path', raw.name)];
    if (h.linkname != null) records.push(paxRecord('linkpath', rawLink ?? Buffer.from(h.linkname ?? '')));
    for (const [k, v] of Object.entries(pax)) records.push(paxRecord(k, Buffer.from(v)));
    h.rawPax = Buffer.concat(records);
    h.name = 'kiwi-raw-name';
    if (h.linkname !== undefined) h.linkname = 'kiwi-raw-name';
    return h;
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
    if (header.rawPax) {
      // Straight into the archive, before the entry's own header (which tar-stream writes when the
      // entry opens: the previous entry has ended, so nothing else is being written).
      const { rawPax, ...rest } = header;
      this.#pack.push(paxHeaderBlocks(rawPax, (header.mtime?.getTime() ?? 0) / 1000));
      header = rest;
    }
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
