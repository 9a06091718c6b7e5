import { listTreeChunks, lookupPath, type Node } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { CliError, ExitCode } from '../exit-codes.js';
import { formatMode } from '../format.js';
import { formatBytes } from '../output.js';
import { chooseSnapshot, localTime, selectArgs } from '../select.js';

export default kiwiCommand({
  meta: { name: 'ls', description: 'List the files of a snapshot' },
  args: {
    snapshot: { type: 'positional', required: true, description: 'Snapshot id (prefix) or "latest"' },
    dir: { type: 'positional', required: false, description: 'Only this path in the snapshot and below' },
    long: { type: 'boolean', alias: 'l', description: 'Long listing: mode, owner, group, size, modification time' },
    'human-readable': { type: 'boolean', description: 'With -l: sizes as 1.5 MiB instead of bytes' },
    ...selectArgs,
  },
  async run({ args, session }) {
    const repo = await session.openRepository();
    const out = session.out;
    const { id, snapshot } = await chooseSnapshot(repo, String(args.snapshot ?? ''), args, out);
    const dir = args.dir ? String(args.dir) : '/';
    if (!(await lookupPath(repo, snapshot, dir))) {
      throw new CliError(`${dir} is not in snapshot ${id.slice(0, 8)}`, ExitCode.Failure);
    }
    const human = Boolean(args['human-readable']);
    let count = 0;
    // A bad entry or an unreadable directory is reported once and the listing goes on; only the
    // count is kept, however many there are.
    let errors = 0;
    const onError = (e: { path: string; message: string }) => {
      errors++;
      out.error(`${e.path}: ${e.message}`, { path: e.path });
    };
    const long = Boolean(args.long);
    // A chunk of entries at a time (thousands): its lines are made into one string and written
    // with one call; the only await is stdout's backpressure, once per chunk.
    for await (const chunk of listTreeChunks(repo, snapshot, dir, { onError })) {
      count += chunk.length;
      if (out.json) {
        for (const { path, node } of chunk) out.emit('node', nodeJson(path, node));
      } else {
        const lines = new Array<string>(chunk.length);
        for (let i = 0; i < chunk.length; i++) {
          const { path, node } = chunk[i]!;
          lines[i] = long ? longLine(path, node, human) : path;
        }
        out.printLines(lines);
      }
      const wait = out.backpressure();
      if (wait) await wait;
    }
    out.emit('summary', { snapshot_id: id, entries: count, ...(errors ? { errors } : {}) });
    if (errors) {
      out.info(`${errors} entr${errors === 1 ? 'y' : 'ies'} could not be listed`);
      return ExitCode.Failure;
    }
    return ExitCode.Ok;
  },
});

/** The `node` JSON line of `ls --json` (without its message type); `find --json` matches carry the same fields. */
export function nodeJson(path: string, node: Node): Record<string, unknown> {
  return {
    path,
    name: node.name,
    type: node.type,
    mode: node.mode,
    permissions: formatMode(node.type, node.mode),
    size: node.size,
    uid: node.uid,
    gid: node.gid,
    ...(node.user !== undefined ? { user: node.user } : {}),
    ...(node.group !== undefined ? { group: node.group } : {}),
    mtime: mtimeDate(node).toISOString(),
    ...(node.linkTarget !== undefined ? { link_target: node.linkTarget } : {}),
    // The exact bytes (base64) of a name or link target that is not valid UTF-8.
    ...(node.nameRaw !== undefined ? { name_raw: node.nameRaw } : {}),
    ...(node.linkTargetRaw !== undefined ? { link_target_raw: node.linkTargetRaw } : {}),
  };
}

export function mtimeDate(node: Node): Date {
  try {
    return new Date(Number(BigInt(node.mtimeNs) / 1_000_000n));
  } catch {
    return new Date(0);
  }
}

/** `-rw-r--r-- alice    staff          1234 2024-05-01 13:45:00 /home/alice/notes.txt` */
export function longLine(path: string, node: Node, human: boolean): string {
  const size = human ? formatBytes(node.size) : String(node.size);
  const link = node.linkTarget !== undefined ? ` -> ${node.linkTarget}` : '';
  return `${formatMode(node.type, node.mode)} ${String(node.user ?? node.uid).padEnd(8)} ${String(node.group ?? node.gid).padEnd(8)} ${size.padStart(human ? 10 : 12)} ${localTime(mtimeDate(node))} ${path}${link}`;
}
