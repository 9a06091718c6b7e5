import { copySnapshots } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { lockOptionsFor, retryLockArgs } from '../lock-wait.js';
import { stringArg } from '../args.js';
import { ExitCode, UsageError } from '../exit-codes.js';
import { formatBytes } from '../output.js';

export default kiwiCommand({
  meta: { name: 'copy', description: 'Copy snapshots from another repository into this one (e.g. local → S3 for an off-site copy)' },
  interruptible: true,
  args: {
    ...retryLockArgs,
    snapshots: { type: 'positional', required: false, description: 'Source snapshot ids or prefixes (default: all)' },
    'from-repo': { type: 'string', description: 'The repository to copy from' },
    'from-password-file': { type: 'string', description: 'Password file of --from-repo (default: $KIWI_FROM_PASSWORD, $KIWI_FROM_PASSWORD_FILE)' },
  },
  async run({ args, session, signal }) {
    const fromUrl = stringArg(args['from-repo']);
    if (!fromUrl) throw new UsageError('copy needs --from-repo <url>: the repository to copy snapshots from');
    const source = await session.openFromRepository(fromUrl, stringArg(args['from-password-file']), { lockOptions: lockOptionsFor(args, session, signal) });
    const dest = await session.openRepository({ lockOptions: lockOptionsFor(args, session, signal) });
    if (source.id === dest.id) throw new UsageError(`--from-repo ${source.location} is this repository itself (id ${dest.id.slice(0, 8)}): nothing to copy`);
    const refs = (args._ ?? []).map(String).filter(Boolean);
    const snapshots = refs.length ? await Promise.all(refs.map((r) => source.findSnapshot(r))) : undefined;
    const out = session.out;
    const r = await copySnapshots(source, dest, {
      ...(snapshots ? { snapshots } : {}),
      onProgress: (p) => out.progress(`copying ${p.snapshot.slice(0, 8)}: ${p.blobs} blobs, ${formatBytes(p.bytes)} stored`),
      onSnapshotFailed: (src, err) => {
        out.clearProgress();
        out.error(`snapshot ${src.slice(0, 8)} not copied: ${err.message}`, { snapshot: src });
      },
      onSnapshot: (src, res) => {
        out.clearProgress();
        out.emit('snapshot', { source: src, id: res.id, skipped: res.skipped });
        out.info(res.skipped ? `snapshot ${src.slice(0, 8)}: already copied (${res.id.slice(0, 8)})` : `snapshot ${src.slice(0, 8)} copied as ${res.id.slice(0, 8)}`);
      },
    });
    out.clearProgress();
    out.emit('summary', { copied: r.copied.length, skipped: r.skipped.length, failed: r.failed.length, blobs_stored: r.blobsStored, bytes_stored: r.bytesStored, blobs_read: r.blobsRead, same_ids: r.sameIds });
    out.info(
      `${r.copied.length} snapshot${r.copied.length === 1 ? '' : 's'} copied, ${r.skipped.length} already there${r.failed.length ? `, ${r.failed.length} not copied (damaged in the source: \`kiwi check\` it)` : ''}; ${r.blobsStored} blobs (${formatBytes(r.bytesStored)}) stored`,
    );
    return r.failed.length > 0 ? ExitCode.Failure : ExitCode.Ok;
  },
});
