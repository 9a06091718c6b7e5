/**
 * Extended attributes in tree nodes: read at backup, checked and set at restore.
 *
 * A node's `xattrs` lists every attribute of the entry (Linux `user.*`,
 * `trusted.*` (visible to root only), `security.*` such as
 * `security.capability`, and POSIX ACLs, which Linux keeps as the
 * `system.posix_acl_access` / `system.posix_acl_default` attributes), sorted
 * by the raw bytes of the name, each `{ name, nameRaw?, value }` with the value
 * in base64. Read and written through `@kiwi-backup/native-fs`, never
 * following a symlink; without the addon they are neither backed up nor
 * restored, and that is reported.
 *
 * Bounds (the same at backup and restore, where a tree is untrusted input):
 * {@link XATTR_LIMITS}. Linux itself caps a value at 64 KiB and a name at 255
 * bytes.
 */
import type { Node, NodeXattr } from '../repository/types.js';
import { XATTR_LIMITS } from './codec.js';

export { XATTR_LIMITS, decodeXattrs, xattrsProblem, type DecodedXattr } from './codec.js';
import { nativeFs, nativeFsUnavailableReason } from '../native/native-fs.js';
import { strictUtf8 } from '../backup/node.js';
import type { XattrList } from '../walker/scan.js';

/** What reading one entry's attributes found. */
export interface XattrRead {
  xattrs: NodeXattr[] | undefined;
  /** Attributes that could not be stored, and why (one message each; the entry itself is stored). */
  problems: string[];
}

const NO_XATTRS = new Set(['ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** Whether extended attributes can be read and written here (the addon is built, and the platform has them). */
export function xattrsAvailable(): boolean {
  const n = nativeFs();
  return n !== null && n.xattrSupported;
}

/** Why extended attributes are not available (undefined when they are). */
export function xattrsUnavailableReason(): string | undefined {
  const n = nativeFs();
  if (n === null) return `@kiwi-backup/native-fs is not available (${nativeFsUnavailableReason() ?? 'unknown reason'})`;
  if (!n.xattrSupported) return `this platform (${process.platform}) has no extended attribute API that Kiwi supports`;
  return undefined;
}

function describeName(raw: Buffer): string {
  return JSON.stringify(raw.toString('utf8'));
}

/**
 * Reads the extended attributes of `path` (not following a symlink). Call
 * only when {@link xattrsAvailable}. A file system without attributes, or an
 * entry that vanished, gives none and no problem.
 */
export function readXattrs(path: Buffer): XattrRead {
  let flat: XattrList;
  try {
    flat = nativeFs()!.lgetxattrsSync(path, XATTR_LIMITS.maxValue, XATTR_LIMITS.maxCount, XATTR_LIMITS.maxList);
  } catch (err) {
    return xattrsFromList(err as NodeJS.ErrnoException);
  }
  return xattrsFromList(flat);
}

/**
 * The attributes of an entry from the addon's list (`lgetxattrsSync`, or read with its directory by
 * the walker's native scanner): null when there are none, an Error when listing them failed.
 */
export function xattrsFromList(flat: XattrList | NodeJS.ErrnoException | null): XattrRead {
  const problems: string[] = [];
  if (flat === null) return { xattrs: undefined, problems };
  if (flat instanceof Error) {
    const code = flat.code ?? '';
    if (NO_XATTRS.has(code) || code === 'ENOENT') return { xattrs: undefined, problems };
    problems.push(`cannot list extended attributes: ${flat.message}`);
    return { xattrs: undefined, problems };
  }
  if (flat.length === 0) return { xattrs: undefined, problems };
  const items: Array<{ raw: Buffer; value: Buffer }> = [];
  let total = 0;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const raw = flat[i] as Buffer;
    const v = flat[i + 1]!;
    if (typeof v === 'number') {
      problems.push(
        v >= 0
          ? `extended attribute ${describeName(raw)} is ${v} bytes, over the ${XATTR_LIMITS.maxValue}-byte limit: not stored`
          : `cannot read extended attribute ${describeName(raw)}: errno ${-v}`,
      );
      continue;
    }
    if (raw.length > XATTR_LIMITS.maxName) {
      problems.push(`extended attribute name ${describeName(raw)} is over ${XATTR_LIMITS.maxName} bytes: not stored`);
      continue;
    }
    if (total + v.length > XATTR_LIMITS.maxTotal) {
      problems.push(`extended attribute ${describeName(raw)}: the entry's attributes exceed ${XATTR_LIMITS.maxTotal} bytes: not stored`);
      continue;
    }
    total += v.length;
    items.push({ raw, value: v });
  }
  if (flat.truncated !== undefined) {
    problems.push(`${flat.truncated} extended attributes; only the first ${XATTR_LIMITS.maxCount} are stored`);
  }
  if (items.length === 0) return { xattrs: undefined, problems };
  items.sort((a, b) => Buffer.compare(a.raw, b.raw));
  const xattrs = items.map(({ raw, value }): NodeXattr => {
    const s = strictUtf8(raw);
    return s !== undefined ? { name: s, value: value.toString('base64') } : { name: raw.toString('utf8'), nameRaw: raw.toString('base64'), value: value.toString('base64') };
  });
  return { xattrs, problems };
}

/** A node's attributes for display in messages. */
export function xattrNames(node: Pick<Node, 'xattrs'>): string {
  return (node.xattrs ?? []).map((x) => x.name).join(', ');
}
