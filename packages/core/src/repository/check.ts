/**
 * `check`: verify a repository's structure and, with `readData`, every byte of its packs.
 * Every problem names the storage path of the file concerned.
 */
import { parseKeyFile, sha256Hex } from '../crypto/keys.js';
import { OVERHEAD } from '../crypto/aead.js';
import { decompress } from '../compression/zstd.js';
import type { Storage } from '../storage/types.js';
import { handlePath } from '../storage/types.js';
import { BlobIndex } from './index-table.js';
import { ENTRY_SIZE, PACK_HEADER_VERSION, decodePackHeader, entryToLocation, scanIndexBody, type PackEntry } from './pack-format.js';
import type { BlobLocation, CheckOptions, CheckProblem, CheckReport, Snapshot, Tree } from './types.js';

export interface CheckContext {
  storage: Storage;
  decrypt(data: Uint8Array): Buffer;
  blobIdBytes(data: Uint8Array): Buffer;
  /** Authenticate, decompress and verify a blob's bytes (throws IntegrityError). */
  openBlob(loc: BlobLocation, bytes: Uint8Array): Promise<Buffer>;
}

interface PackRef {
  indexFile: string;
  count: number;
  end: number;
  /** The 45-byte entries as listed in the index file (views into its body). */
  parts: Buffer[];
}

/** At most this many blob-level errors are listed per pack. */
const MAX_BLOB_ERRORS_PER_PACK = 20;

async function names(storage: Storage, type: 'key' | 'snapshot' | 'index' | 'data'): Promise<Array<{ name: string; size: number }>> {
  const out: Array<{ name: string; size: number }> = [];
  for await (const f of storage.list(type)) out.push({ name: f.name, size: f.size });
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function msg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function checkRepository(ctx: CheckContext, opts: CheckOptions): Promise<CheckReport> {
  const { storage } = ctx;
  const errors: CheckProblem[] = [];
  const warnings: CheckProblem[] = [];
  const error = (file: string, message: string) => errors.push({ file, message });
  const progress = opts.onProgress ?? (() => undefined);
  const stats = { keys: 0, snapshots: 0, indexFiles: 0, packs: 0, blobs: 0, trees: 0, bytesVerified: 0 };

  /** Load a content-addressed file and check its name; undefined when unreadable (error recorded). */
  const loadNamed = async (type: 'key' | 'snapshot' | 'index', name: string, file: string): Promise<Buffer | undefined> => {
    let bytes: Buffer;
    try {
      bytes = await storage.load({ type, name });
    } catch (err) {
      error(file, `cannot be read: ${msg(err)}`);
      return undefined;
    }
    if (sha256Hex(bytes) !== name) {
      error(file, `content does not match its name (SHA-256 of its ${bytes.byteLength} bytes differs): the file is damaged or truncated`);
      return undefined;
    }
    return bytes;
  };
  const openMeta = async (bytes: Buffer, file: string): Promise<Buffer | undefined> => {
    let plain: Buffer;
    try {
      plain = ctx.decrypt(bytes);
    } catch {
      error(file, 'authentication failed: the file is damaged or was not written with this repository\'s keys');
      return undefined;
    }
    try {
      return await decompress(plain);
    } catch (err) {
      error(file, msg(err));
      return undefined;
    }
  };

  // -- config (read at open; re-read here in case it changed since)
  try {
    const cfg = JSON.parse(ctx.decrypt(await storage.load({ type: 'config', name: 'config' })).toString('utf8')) as { version?: unknown };
    if (cfg.version !== 1) error('config', `unsupported repository version ${String(cfg.version)}`);
  } catch (err) {
    error('config', storage.isNotFound(err) ? 'is missing' : `cannot be read or authenticated: ${msg(err)}`);
  }

  // -- key files
  const keyFiles = await names(storage, 'key');
  let done = 0;
  for (const { name } of keyFiles) {
    const file = `keys/${name}`;
    const bytes = await loadNamed('key', name, file);
    if (bytes) {
      try {
        parseKeyFile(bytes, file);
        stats.keys++;
      } catch (err) {
        error(file, msg(err));
      }
    }
    progress({ phase: 'keys', done: ++done, total: keyFiles.length });
  }

  // -- index files
  const idx = new BlobIndex();
  const packRefs = new Map<string, PackRef>();
  const indexFiles = await names(storage, 'index');
  done = 0;
  await eachLimit(indexFiles, 4, async ({ name }) => {
    const file = `index/${name}`;
    const bytes = await loadNamed('index', name, file);
    const body = bytes && (await openMeta(bytes, file));
    if (body) {
      try {
        let packNo = 0;
        let ref: PackRef | undefined;
        // Validate the whole body before adding anything.
        scanIndexBody(body, () => undefined, () => undefined);
        scanIndexBody(
          body,
          (packId, count) => {
            packNo = idx.packNumber(packId);
            ref = packRefs.has(packId) ? undefined : { indexFile: file, count, end: 0, parts: [] };
            if (ref) packRefs.set(packId, ref);
          },
          (flags, buf, idOff, offset, length, rawLength) => {
            idx.add(flags, buf, idOff, packNo, offset, length, rawLength);
            if (ref) {
              ref.parts.push(buf.subarray(idOff - 1, idOff - 1 + ENTRY_SIZE));
              ref.end = Math.max(ref.end, offset + length);
            }
          },
        );
        stats.indexFiles++;
      } catch (err) {
        error(file, msg(err));
      }
    }
    progress({ phase: 'index', done: ++done, total: indexFiles.length });
  });
  stats.blobs = idx.size;

  // -- packs: existence, size, unreferenced ones
  const packFiles = await names(storage, 'data');
  const packSize = new Map(packFiles.map((f) => [f.name, f.size]));
  stats.packs = packFiles.length;
  for (const [packId, ref] of packRefs) {
    const size = packSize.get(packId);
    const file = handlePath({ type: 'data', name: packId });
    if (size === undefined) {
      error(ref.indexFile, `lists pack ${file} (${ref.count} blobs), which does not exist`);
      continue;
    }
    const expected = ref.end + 1 + ref.count * ENTRY_SIZE + OVERHEAD + 4;
    if (size !== expected) {
      error(file, `is ${size} bytes but its index (${ref.indexFile}) implies ${expected}: the pack is truncated or damaged`);
    }
  }
  for (const { name } of packFiles) {
    if (!packRefs.has(name)) {
      warnings.push({
        file: handlePath({ type: 'data', name }),
        message: 'is not referenced by any index file (left by an interrupted backup; the next backup can reuse its blobs only after it is indexed, prune removes it)',
      });
    }
  }
  progress({ phase: 'packs', done: packFiles.length, total: packFiles.length });

  // -- snapshots
  const snapFiles = await names(storage, 'snapshot');
  const snapshots: Array<{ id: string; snapshot: Snapshot }> = [];
  done = 0;
  await eachLimit(snapFiles, 4, async ({ name }) => {
    const file = `snapshots/${name}`;
    const bytes = await loadNamed('snapshot', name, file);
    const body = bytes && (await openMeta(bytes, file));
    if (body) {
      try {
        const s = JSON.parse(body.toString('utf8')) as Snapshot;
        if (typeof s?.tree !== 'string' || typeof s.time !== 'string') throw new Error('not a snapshot (missing tree or time)');
        snapshots.push({ id: name, snapshot: s });
        stats.snapshots++;
      } catch (err) {
        error(file, msg(err));
      }
    }
    progress({ phase: 'snapshots', done: ++done, total: snapFiles.length });
  });
  snapshots.sort((a, b) => a.id.localeCompare(b.id));

  // -- trees: every tree loadable, every referenced blob indexed
  const seenTrees = new Set<string>();
  const missingData = new Set<string>();
  for (const { id: snapId, snapshot } of snapshots) {
    const snapFile = `snapshots/${snapId}`;
    const stack: Array<{ id: string; path: string }> = [{ id: snapshot.tree, path: '/' }];
    while (stack.length > 0) {
      const { id, path } = stack.pop()!;
      if (seenTrees.has(id)) continue;
      seenTrees.add(id);
      const loc = idx.lookup('tree', id);
      if (!loc) {
        error(snapFile, `tree ${id} (${path}) is not in the index`);
        continue;
      }
      const packFile = handlePath({ type: 'data', name: loc.pack });
      let tree: Tree;
      try {
        const bytes = await storage.load({ type: 'data', name: loc.pack }, { offset: loc.offset, length: loc.length });
        const plain = await ctx.openBlob(loc, bytes);
        tree = JSON.parse(plain.toString('utf8')) as Tree;
        if (!Array.isArray(tree?.nodes)) throw new Error(`tree blob ${id} has no nodes array`);
      } catch (err) {
        error(packFile, `tree ${id} (${path}, snapshot ${snapId}) cannot be loaded: ${msg(err)}`);
        continue;
      }
      stats.trees++;
      for (const node of tree.nodes) {
        const child = path === '/' ? `/${node.name}` : `${path}/${node.name}`;
        if (node.type === 'file') {
          for (const c of node.content ?? []) {
            if (!idx.has('data', c) && !missingData.has(c)) {
              missingData.add(c);
              error(snapFile, `${child}: data blob ${c} is not in the index`);
            }
          }
        } else if (node.type === 'dir') {
          if (typeof node.subtree === 'string') stack.push({ id: node.subtree, path: child });
          else error(snapFile, `${child}: directory without a subtree (tree ${id})`);
        }
      }
      progress({ phase: 'trees', done: stats.trees, total: stats.trees + stack.length });
    }
  }

  // -- read every pack
  if (opts.readData) {
    done = 0;
    await eachLimit(packFiles, 2, async ({ name }) => {
      const file = handlePath({ type: 'data', name });
      try {
        await verifyPack(ctx, name, file, packRefs.get(name), error, stats);
      } catch (err) {
        error(file, msg(err));
      }
      progress({ phase: 'data', done: ++done, total: packFiles.length });
    });
  }

  return { errors, warnings, stats };
}

async function verifyPack(
  ctx: CheckContext,
  name: string,
  file: string,
  ref: PackRef | undefined,
  error: (file: string, message: string) => void,
  stats: CheckReport['stats'],
): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await ctx.storage.load({ type: 'data', name });
  } catch (err) {
    error(file, `cannot be read: ${msg(err)}`);
    return;
  }
  stats.bytesVerified += bytes.byteLength;
  if (sha256Hex(bytes) !== name) {
    error(file, `content does not match its name (SHA-256 of its ${bytes.byteLength} bytes differs): the pack is damaged or truncated`);
  }
  // The header, from the pack's own trailer.
  let header: PackEntry[] | undefined;
  let headerPlain: Buffer | undefined;
  let dataEnd = bytes.byteLength;
  try {
    if (bytes.byteLength < 4 + OVERHEAD + 1) throw new Error(`too short (${bytes.byteLength} bytes) to hold a header`);
    const hlen = bytes.readUInt32LE(bytes.byteLength - 4);
    if (hlen < OVERHEAD + 1 || hlen > bytes.byteLength - 4) throw new Error(`header length ${hlen} is impossible for a ${bytes.byteLength}-byte pack`);
    dataEnd = bytes.byteLength - 4 - hlen;
    try {
      headerPlain = ctx.decrypt(bytes.subarray(dataEnd, bytes.byteLength - 4));
    } catch {
      throw new Error('header authentication failed');
    }
    header = decodePackHeader(headerPlain);
  } catch (err) {
    error(file, `pack header: ${msg(err)}`);
  }
  if (ref && headerPlain) {
    const fromIndex = Buffer.concat(ref.parts);
    if (!fromIndex.equals(headerPlain.subarray(1))) {
      error(file, `pack header lists ${header?.length ?? '?'} blobs that differ from its index entries in ${ref.indexFile} (${ref.count} blobs)`);
    }
  }
  // Verify each blob, by the header or, if it is unreadable, by the index.
  let entries = header;
  if (!entries && ref) {
    entries = decodePackHeader(Buffer.concat([Buffer.from([PACK_HEADER_VERSION]), ...ref.parts]));
    dataEnd = bytes.byteLength;
  }
  if (!entries) return;
  let blobErrors = 0;
  for (const e of entries) {
    const loc = entryToLocation(e, name);
    let problem: string | undefined;
    if (e.offset + e.length > dataEnd) {
      problem = `${loc.type} blob ${loc.id} (offset ${e.offset}, ${e.length} bytes) lies past the end of the pack data (${dataEnd} bytes)`;
    } else {
      try {
        await ctx.openBlob(loc, bytes.subarray(e.offset, e.offset + e.length));
      } catch (err) {
        problem = msg(err);
      }
    }
    if (problem) {
      blobErrors++;
      if (blobErrors <= MAX_BLOB_ERRORS_PER_PACK) error(file, problem);
    }
  }
  if (blobErrors > MAX_BLOB_ERRORS_PER_PACK) error(file, `and ${blobErrors - MAX_BLOB_ERRORS_PER_PACK} more damaged blobs in this pack`);
}
