/**
 * The `xattrs` field of a tree node, as untrusted input: its limits, a check
 * that decodes nothing but the names (for the tree validator, run by every
 * reader), and the decoding the restore uses. See xattrs.ts.
 */

export const XATTR_LIMITS = {
  /** Largest value stored (bytes). */
  maxValue: 64 * 1024,
  /** Most attributes per entry. */
  maxCount: 1024,
  /** Longest name (bytes). */
  maxName: 255,
  /** Sum of the value sizes of one entry (bytes). */
  maxTotal: 1024 * 1024,
  /** Longest name list read from the file system (bytes). */
  maxList: 1024 * 1024,
} as const;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_VALUE_B64 = Math.ceil(XATTR_LIMITS.maxValue / 3) * 4;
const MAX_NAME_B64 = Math.ceil(XATTR_LIMITS.maxName / 3) * 4;

/** One attribute of a node, decoded and checked. */
export interface DecodedXattr {
  name: Buffer;
  value: Buffer;
}

/** Bytes a canonical base64 text of length `len` ending in `pad` '=' decodes to. */
function decodedLength(s: string): number {
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  return (s.length / 4) * 3 - pad;
}

/**
 * What is wrong with a node's `xattrs` value, or undefined. Checks the list,
 * each name (decoded: 1…255 bytes, no NUL), each value's base64 and size, and
 * the total, without decoding values.
 */
export function xattrsProblem(list: unknown): string | undefined {
  if (!Array.isArray(list)) return 'xattrs is not a list';
  if (list.length > XATTR_LIMITS.maxCount) return `${list.length} extended attributes (at most ${XATTR_LIMITS.maxCount})`;
  let total = 0;
  for (const x of list as unknown[]) {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'an extended attribute is not an object';
    const { name, nameRaw, value } = x as Record<string, unknown>;
    if (typeof name !== 'string' || (nameRaw !== undefined && typeof nameRaw !== 'string') || typeof value !== 'string') {
      return 'an extended attribute has no name or value';
    }
    const shown = JSON.stringify(name.slice(0, 64));
    if (value.length > MAX_VALUE_B64 || value.length % 4 !== 0 || !BASE64.test(value)) {
      return `extended attribute ${shown}: the value is not base64 of at most ${XATTR_LIMITS.maxValue} bytes`;
    }
    let raw: Buffer;
    if (nameRaw !== undefined) {
      if (nameRaw.length > MAX_NAME_B64 || nameRaw.length % 4 !== 0 || !BASE64.test(nameRaw)) return `extended attribute ${shown}: nameRaw is not base64 of at most ${XATTR_LIMITS.maxName} bytes`;
      raw = Buffer.from(nameRaw, 'base64');
    } else {
      if (name.length > XATTR_LIMITS.maxName) return `extended attribute name ${shown}… is longer than ${XATTR_LIMITS.maxName} bytes`;
      raw = Buffer.from(name, 'utf8');
    }
    if (raw.length === 0 || raw.length > XATTR_LIMITS.maxName || raw.includes(0)) return `extended attribute name ${shown} is empty, longer than ${XATTR_LIMITS.maxName} bytes or holds a NUL byte`;
    total += decodedLength(value);
    if (total > XATTR_LIMITS.maxTotal) return `the extended attributes exceed ${XATTR_LIMITS.maxTotal} bytes`;
  }
  return undefined;
}

/** Checks ({@link xattrsProblem}) and decodes a node's `xattrs`; throws an Error saying what is wrong. */
export function decodeXattrs(list: unknown): DecodedXattr[] {
  const problem = xattrsProblem(list);
  if (problem !== undefined) throw new Error(problem);
  return (list as Array<{ name: string; nameRaw?: string; value: string }>).map((x) => ({
    name: x.nameRaw !== undefined ? Buffer.from(x.nameRaw, 'base64') : Buffer.from(x.name, 'utf8'),
    value: Buffer.from(x.value, 'base64'),
  }));
}
