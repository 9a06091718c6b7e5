import { listTree } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { ExitCode, UsageError } from '../exit-codes.js';
import { formatMode } from '../format.js';

export default kiwiCommand({
  meta: { name: 'ls', description: 'List the files of a snapshot' },
  args: {
    snapshot: { type: 'positional', required: true, description: 'Snapshot id (prefix) or "latest"' },
    path: { type: 'positional', required: false, description: 'Only this path in the snapshot and below' },
    long: { type: 'boolean', alias: 'l', description: 'Show mode, size and time' },
  },
  async run({ args, session }) {
    const repo = await session.openRepository();
    const ref = String(args.snapshot ?? '');
    if (!ref) throw new UsageError('name a snapshot: an id prefix or "latest"');
    const { id, snapshot } = await repo.findSnapshot(ref);
    const out = session.out;
    let count = 0;
    // A bad entry or an unreadable directory is reported once and the listing goes on; only the
    // count is kept, however many there are.
    let errors = 0;
    const onError = (e: { path: string; message: string }) => {
      errors++;
      out.error(`${e.path}: ${e.message}`, { path: e.path });
    };
    for await (const { path, node } of listTree(repo, snapshot, args.path ? String(args.path) : undefined, { onError })) {
      count++;
      if (out.json) {
        out.emit('node', {
          path,
          name: node.name,
          type: node.type,
          mode: node.mode,
          size: node.size,
          uid: node.uid,
          gid: node.gid,
          mtime: new Date(Number(BigInt(node.mtimeNs) / 1_000_000n)).toISOString(),
          ...(node.linkTarget !== undefined ? { link_target: node.linkTarget } : {}),
        });
      } else if (args.long) {
        const mtime = new Date(Number(BigInt(node.mtimeNs) / 1_000_000n)).toISOString().replace('T', ' ').slice(0, 19);
        out.print(`${formatMode(node.type, node.mode)} ${String(node.user ?? node.uid).padEnd(8)} ${String(node.size).padStart(12)} ${mtime} ${path}${node.linkTarget !== undefined ? ` -> ${node.linkTarget}` : ''}`);
      } else {
        out.print(path);
      }
    }
    out.emit('summary', { snapshot_id: id, entries: count, ...(errors ? { errors } : {}) });
    if (errors) {
      out.info(`${errors} entr${errors === 1 ? 'y' : 'ies'} could not be listed`);
      return ExitCode.Failure;
    }
    return ExitCode.Ok;
  },
});
