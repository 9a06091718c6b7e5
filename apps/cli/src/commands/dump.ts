import { listTree, lookupPath, readContentInOrder, splitSnapshotPath, type ListedNode, type Node, type OrderedItem, type Repository } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { stringArg } from '../args.js';
import { CliError, ExitCode, UsageError } from '../exit-codes.js';
import type { Output } from '../output.js';
import { chooseSnapshot, selectArgs } from '../select.js';
import { TarWriter, tarHeader, type TarHeader } from '../tar.js';

export default kiwiCommand({
  meta: { name: 'dump', description: 'Write a file of a snapshot to stdout (a directory as a tar archive)' },
  interruptible: true,
  args: {
    snapshot: { type: 'positional', required: true, description: 'Snapshot id (prefix) or "latest"' },
    file: { type: 'positional', required: true, description: 'Path in the snapshot: a file (its content) or a directory (a tar archive)' },
    archive: { type: 'string', description: 'Archive format for a directory: tar (the default and only one)' },
    ...selectArgs,
  },
  async run({ args, session, signal }) {
    const out = session.out;
    if (out.json) throw new UsageError('dump writes the file itself to stdout: --json does not apply');
    const archive = stringArg(args.archive) ?? 'tar';
    if (archive !== 'tar') throw new UsageError(`unknown --archive "${archive}" (supported: tar)`);
    const path = String(args.file ?? '');
    if (!path) throw new UsageError('name the file or directory to dump, e.g. `kiwi dump latest /etc/hosts`');
    const repo = await session.openRepository();
    const { id, snapshot } = await chooseSnapshot(repo, String(args.snapshot ?? ''), args, out);
    const node = await lookupPath(repo, snapshot, path);
    if (!node) throw new CliError(`${path} is not in snapshot ${id.slice(0, 8)}`, ExitCode.Failure);
    if (node.type === 'file') {
      await dumpFile(repo, path, node, out, signal);
      return;
    }
    if (process.stdout.isTTY) {
      throw new UsageError(`${path} is a ${node.type === 'dir' ? 'directory' : node.type}: refusing to write a tar archive to a terminal (redirect stdout, e.g. \`kiwi dump … > out.tar\`)`);
    }
    const stats = await dumpTar(repo, snapshot, path, out, signal);
    if (stats.skipped.length > 0) {
      out.warn(`${stats.skipped.length} socket${stats.skipped.length === 1 ? '' : 's'} left out (tar cannot hold sockets): ${stats.skipped.slice(0, 5).join(', ')}${stats.skipped.length > 5 ? ', …' : ''}`);
    }
    if (stats.errors.length > 0) {
      out.info(`${stats.errors.length} entr${stats.errors.length === 1 ? 'y' : 'ies'} could not be read and are not in the archive`);
      return ExitCode.Failure;
    }
    return ExitCode.Ok;
  },
});

const SLASH = Buffer.from('/');

/** Sum of a file's blob sizes per the index; undefined when a blob is not in the index. */
function contentSize(repo: Repository, node: Node): number | undefined {
  let total = 0;
  for (const blob of node.content ?? []) {
    const loc = repo.lookupBlob('data', blob);
    if (!loc) return undefined;
    total += loc.rawLength;
  }
  return total;
}

function checkSize(repo: Repository, path: string, node: Node): void {
  const size = contentSize(repo, node);
  if (size !== undefined && size !== node.size) {
    throw new CliError(`${path}: its content blobs hold ${size} bytes, the snapshot says ${node.size} (damaged snapshot or index; run \`kiwi check\`)`, ExitCode.Failure);
  }
}

async function dumpFile(repo: Repository, path: string, node: Node, out: Output, signal: AbortSignal): Promise<void> {
  await repo.loadIndex();
  checkSize(repo, path, node);
  try {
    for await (const piece of readContentInOrder(repo, [{ tag: path, content: node.content ?? [] }])) {
      signal.throwIfAborted();
      if (piece.data) out.writeRaw(piece.data);
      const wait = out.backpressure();
      if (wait) await wait;
    }
  } catch (err) {
    if ((err as Error).name === 'OrderedContentError') throw new CliError(`${path}: ${(err as Error).message}`, ExitCode.Failure, { cause: err });
    throw err;
  }
}

interface TarEntry {
  path: string;
  header: TarHeader;
}

/** Tar entries for everything under `path` (its name relative to `path`'s parent), content in order. */
async function dumpTar(
  repo: Repository,
  snapshot: Parameters<typeof listTree>[1],
  path: string,
  out: Output,
  signal: AbortSignal,
): Promise<{ entries: number; skipped: string[]; errors: string[] }> {
  await repo.loadIndex();
  const parts = splitSnapshotPath(path);
  // Names in the archive start at the dumped directory's own name (`docs/…`); the root's children at theirs.
  const strip = parts.length <= 1 ? 1 : `/${parts.slice(0, -1).join('/')}/`.length;
  const skipped: string[] = [];
  /** Entries that could not be listed (invalid tree entries, unreadable trees): reported, left out of the archive. */
  const errors: string[] = [];
  /** Files with several names (dev:inode → their first name in the archive, and its bytes), to write hard links. */
  const linked = new Map<string, { name: string; raw: Buffer }>();
  /**
   * The directories on the walk's path (depth first): snapshot path → the raw bytes of its name in
   * the archive. A name that is not UTF-8 has a lossy `path` (U+FFFD), so two such siblings look
   * alike there; the walk is depth first, so the innermost open directory is the right parent.
   */
  const rawDirs: Array<{ path: string; raw: Buffer }> = [];
  let entries = 0;
  async function* items(): AsyncGenerator<OrderedItem<TarEntry>> {
    const onError = (e: { path: string; message: string }) => {
      errors.push(e.path);
      out.error(`${e.path}: ${e.message}`, { path: e.path });
    };
    for await (const { path: p, node } of listTree(repo, snapshot, path, { onError }) as AsyncIterable<ListedNode>) {
      signal.throwIfAborted();
      const name = p.slice(strip);
      if (name === '') continue;
      const parent = p.slice(0, p.lastIndexOf('/'));
      while (rawDirs.length > 0 && rawDirs[rawDirs.length - 1]!.path !== parent) rawDirs.pop();
      const rawName = node.nameRaw !== undefined ? Buffer.from(node.nameRaw, 'base64') : Buffer.from(node.name);
      const raw = rawDirs.length > 0 ? Buffer.concat([rawDirs[rawDirs.length - 1]!.raw, SLASH, rawName]) : rawName;
      if (node.type === 'dir') rawDirs.push({ path: p, raw });
      let linkTo: { name: string; raw: Buffer } | undefined;
      if (node.type === 'file' && (node.links ?? 1) > 1 && node.inode !== '0') {
        const key = `${node.dev}:${node.inode}`;
        linkTo = linked.get(key);
        if (linkTo === undefined) linked.set(key, { name, raw });
      }
      const header = tarHeader(name, node, linkTo?.name, { name: raw, ...(linkTo ? { hardLinkTo: linkTo.raw } : {}) });
      if (!header) {
        skipped.push(p);
        continue;
      }
      if (node.type === 'file' && linkTo === undefined) checkSize(repo, p, node);
      entries++;
      yield { tag: { path: p, header }, content: node.type === 'file' && linkTo === undefined ? (node.content ?? []) : [] };
    }
  }
  const tar = new TarWriter((chunk) => {
    out.writeRaw(chunk);
    return out.backpressure();
  });
  try {
    for await (const piece of readContentInOrder(repo, items())) {
      if (piece.start) tar.begin(piece.tag.header);
      if (piece.data) await tar.write(piece.data);
      if (piece.end) await tar.end();
    }
    await tar.finish();
  } catch (err) {
    await tar.abort(err as Error);
    const e = err as { name?: string; tag?: TarEntry; message?: string };
    if (e.name === 'OrderedContentError' && e.tag) throw new CliError(`${e.tag.path}: ${e.message}`, ExitCode.Failure, { cause: err });
    throw err;
  }
  return { entries, skipped, errors };
}
