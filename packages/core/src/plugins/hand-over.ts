/**
 * What plug-ins hand to the engine, checked where they hand it over: `addFile`'s path, content and
 * options, an entry's metadata, the backup's tags and metadata, and the view of the backup they get
 * as `ctx.backup`. What readers of a snapshot would refuse must fail the plug-in's hook, naming it,
 * instead of making a "successful" backup whose entry or whole snapshot cannot be read.
 */
import { canonicalJson } from '../repository/canonical.js';
import { MAX_NODE_METADATA_BYTES, MAX_SNAPSHOT_STRING, MAX_SNAPSHOT_TAGS } from '../repository/limits.js';
import type { BackupInfo, ContentSource, VirtualFileOptions } from './types.js';

const VIRTUAL_PATH_BAD = /(^|\/)\.\.?(\/|$)|\0|\\/;

export function validateVirtualPath(path: unknown): string {
  if (typeof path !== 'string' || path === '') throw new TypeError('addFile: path must be a non-empty string');
  if (path.startsWith('/') || VIRTUAL_PATH_BAD.test(path) || path.endsWith('/') || path.includes('//')) {
    throw new TypeError(`addFile: invalid path "${path}" (relative, "/"-separated, no "." or ".." segments, no NUL or "\\")`);
  }
  return path;
}

export function validateContent(content: unknown, what: string): ContentSource {
  if (typeof content === 'string' || typeof content === 'function' || content instanceof Uint8Array) return content as ContentSource;
  throw new TypeError(`${what}: content must be a Buffer, Uint8Array, string or a function returning a stream`);
}

/** What a value is, for messages (never the value itself: a plug-in's data may hold a secret). */
function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number' && Number.isNaN(v)) return 'NaN';
  if (v instanceof Date) return Number.isFinite(v.getTime()) ? 'a Date' : 'an invalid Date';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * `ctx.addFile`'s options, checked and copied. The engine puts them in the snapshot's tree only after
 * the walk: a mode that is not permission bits gave a "successful" backup whose file restore refuses
 * ("mode is not an integer in 0…0o7777"), and an mtime that is not a valid Date a TypeError with a
 * stack after the whole walk, naming no plug-in. The copy keeps what was checked (the plug-in may
 * reuse its object).
 */
export function validateFileOptions(options: unknown): VirtualFileOptions {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw new TypeError(`addFile: options must be an object ({ mode, mtime }), not ${kindOf(options)}`);
  const { mode, mtime } = options as { mode?: unknown; mtime?: unknown };
  const out: VirtualFileOptions = {};
  if (mode !== undefined) {
    if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
      throw new TypeError(`addFile: options.mode must be an integer from 0 to 0o7777 (permission bits, such as 0o640), not ${typeof mode === 'number' && Number.isFinite(mode) ? mode : kindOf(mode)}`);
    }
    out.mode = mode;
  }
  if (mtime !== undefined) {
    if (!(mtime instanceof Date) || !Number.isFinite(mtime.getTime())) throw new TypeError(`addFile: options.mtime must be a valid Date, not ${kindOf(mtime)}`);
    out.mtime = new Date(mtime.getTime());
  }
  return out;
}

/**
 * Why an entry's `ctx.file.metadata` cannot be stored in its tree, or undefined (also for `undefined`
 * and `null`: no metadata). The tree is written later (a directory's when its subtree is done); what
 * it cannot encode failed the backup there with a bare TypeError, and what restore refuses (not an
 * object, over {@link MAX_NODE_METADATA_BYTES}) gave a "successful" backup whose entry — for a
 * directory, its whole subtree — could not be restored.
 */
export function fileMetadataProblem(metadata: unknown): string | undefined {
  if (metadata === undefined || metadata === null) return undefined;
  if (typeof metadata !== 'object' || Array.isArray(metadata)) return `must be an object, not ${kindOf(metadata)}`;
  let json: string;
  try {
    json = canonicalJson(metadata);
  } catch (err) {
    // A BigInt, a cycle, NaN, or nesting deeper than the stack.
    return `cannot be stored as JSON (${err instanceof Error ? err.message : String(err)})`;
  }
  const size = Buffer.byteLength(json, 'utf8');
  if (size > MAX_NODE_METADATA_BYTES) return `is ${size} bytes as JSON (limit ${MAX_NODE_METADATA_BYTES})`;
  return undefined;
}

/** Why `tags` cannot be a snapshot's tags (validate.ts's rule, which readers apply), or undefined. */
function tagsProblem(tags: unknown): string | undefined {
  if (!Array.isArray(tags)) return `must be an array of strings, not ${kindOf(tags)}`;
  if (tags.length > MAX_SNAPSHOT_TAGS) return `has ${tags.length} tags (limit ${MAX_SNAPSHOT_TAGS})`;
  for (let i = 0; i < tags.length; i++) {
    const t: unknown = tags[i];
    if (typeof t !== 'string' || t.length > MAX_SNAPSHOT_STRING || t.includes('\0')) {
      return `[${i}] must be a string of at most ${MAX_SNAPSHOT_STRING} characters without NUL, not ${typeof t === 'string' ? (t.length > MAX_SNAPSHOT_STRING ? `${t.length} characters` : 'one with a NUL') : kindOf(t)}`;
    }
  }
  return undefined;
}

/**
 * What plug-ins see as `ctx.backup`: the engine's own object, read through (`status`, `stats`,
 * `snapshotId` stay live), where only what docs/writing-plugins.md lets them change can be changed:
 * `tags` (pushed to, or replaced by an array, in place) and the contents of `metadata`. The engine
 * used to hand over its object itself: `ctx.backup.sources.push(dir)` had `dir` backed up, and a
 * `host` that is not a string gave a "successful" backup whose snapshot no command could read.
 * What `tags` and `metadata` hold is checked by {@link backupProblem} when a plug-in calls `next()`.
 */
export function backupView(backup: BackupInfo): BackupInfo {
  const readOnly = (key: PropertyKey): TypeError =>
    new TypeError(`ctx.backup.${String(key)} is read-only (a plug-in may change ctx.backup.tags and add its own key to ctx.backup.metadata)`);
  const sources = Object.freeze([...backup.sources]);
  const stats = new Proxy(backup.stats, {
    set: (_t, key) => {
      throw new TypeError(`ctx.backup.stats is read-only (${String(key)} is the engine's counter)`);
    },
    defineProperty: () => {
      throw new TypeError('ctx.backup.stats is read-only');
    },
    deleteProperty: () => {
      throw new TypeError('ctx.backup.stats is read-only');
    },
  });
  return new Proxy(backup, {
    get: (target, key) => (key === 'sources' ? sources : key === 'stats' ? stats : Reflect.get(target, key)),
    set: (target, key, value: unknown) => {
      if (key === 'metadata') throw new TypeError('ctx.backup.metadata cannot be replaced: add your own key to it (ctx.backup.metadata["<plug-in name>"] = …)');
      if (key !== 'tags') throw readOnly(key);
      const problem = tagsProblem(value);
      if (problem) throw new TypeError(`ctx.backup.tags${problem.startsWith('[') ? '' : ' '}${problem}`);
      // In place: the engine keeps its array.
      target.tags.splice(0, target.tags.length, ...(value as string[]));
      return true;
    },
    defineProperty: (_t, key) => {
      throw readOnly(key);
    },
    deleteProperty: (_t, key) => {
      throw new TypeError(`ctx.backup.${String(key)} cannot be deleted`);
    },
    setPrototypeOf: () => {
      throw new TypeError('ctx.backup is read-only');
    },
  });
}

/**
 * Why the backup's `tags` or `metadata` cannot go into the snapshot, or undefined. A tag that is not
 * a string gave a snapshot every reader skips as damaged; a BigInt or a cycle in `metadata` a bare
 * TypeError once the whole backup was done.
 */
export function backupProblem(backup: BackupInfo, withMetadata: boolean): string | undefined {
  const tags = tagsProblem(backup.tags);
  if (tags) return `ctx.backup.tags${tags.startsWith('[') ? '' : ' '}${tags}`;
  if (!withMetadata) return undefined;
  try {
    canonicalJson(backup.metadata);
  } catch (err) {
    return `ctx.backup.metadata cannot be stored as JSON (${err instanceof Error ? err.message : String(err)})`;
  }
  return undefined;
}

/**
 * What a hook wrapper checks of what the plug-in handed back (see {@link wrapHook}): `check` returns
 * why it cannot be stored, or undefined; it runs when the plug-in calls `next()` and, with `onReturn`,
 * when its hook returns.
 */
export interface HandOverCheck {
  check: () => string | undefined;
  onReturn: boolean;
}
