import type { Snapshot } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { stringList } from '../args.js';
import { UsageError } from '../exit-codes.js';
import { chooseSnapshots, selectArgs } from '../select.js';

/** `a,b` and repeated flags → tags, in order, without duplicates. */
function tagList(value: unknown, flag: string): string[] {
  const tags: string[] = [];
  for (const t of stringList(value).flatMap((v) => v.split(','))) {
    const tag = t.trim();
    if (tag === '') continue;
    if (/[\0-\x1f]/.test(tag)) throw new UsageError(`${flag}: a tag cannot hold control characters: ${JSON.stringify(tag)}`);
    if (!tags.includes(tag)) tags.push(tag);
  }
  return tags;
}

export default kiwiCommand({
  meta: { name: 'tag', description: "Change snapshots' tags (writes new snapshot files; the data is untouched)" },
  args: {
    snapshot: { type: 'positional', required: true, description: 'Snapshots to change: id prefixes or "latest" (several may be given)' },
    add: { type: 'string', description: 'Add these tags ("a,b"; repeatable)' },
    remove: { type: 'string', description: 'Remove these tags ("a,b"; repeatable)' },
    set: { type: 'string', description: 'Replace all tags with these ("a,b"; repeatable; --set "" removes all)' },
    ...selectArgs,
  },
  async run({ args, session }) {
    const out = session.out;
    const refs = (args._ ?? []).map(String).filter((r) => r !== '');
    if (refs.length === 0) throw new UsageError('name the snapshots to change: id prefixes or "latest"');
    const setGiven = args.set !== undefined && (args.set as unknown) !== false;
    const set = tagList(args.set, '--set');
    const add = tagList(args.add, '--add');
    const remove = tagList(args.remove, '--remove');
    if (setGiven && (add.length || remove.length)) throw new UsageError('--set replaces all tags: it cannot be combined with --add or --remove');
    if (!setGiven && add.length === 0 && remove.length === 0) throw new UsageError('nothing to change: give --add, --remove or --set');

    const repo = await session.openRepository();
    // Like restic: an exclusive lock, so no prune or other tag run sees a snapshot twice or not at all.
    const lock = await repo.lock('exclusive');
    let changed = 0;
    let unchanged = 0;
    try {
      const targets = await chooseSnapshots(repo, refs, args, out);
      for (const { id, snapshot } of targets) {
        const before = Array.isArray(snapshot.tags) ? snapshot.tags : [];
        const tags = setGiven ? set : [...before.filter((t) => !remove.includes(t)), ...add.filter((t) => !before.includes(t))];
        if (tags.length === before.length && tags.every((t, i) => t === before[i])) {
          unchanged++;
          out.emit('unchanged', { id, short_id: id.slice(0, 8), tags });
          out.info(`snapshot ${id.slice(0, 8)}: tags unchanged (${before.join(',') || 'none'})`);
          continue;
        }
        const next: Snapshot = { ...snapshot, tags, original: snapshot.original ?? id };
        // New file first, then the old one goes: a crash in between leaves the backup listed twice, never lost.
        const newId = await repo.saveSnapshot(next);
        await repo.storage.remove({ type: 'snapshot', name: id });
        changed++;
        out.emit('changed', { old_id: id, new_id: newId, short_id: newId.slice(0, 8), original: next.original, tags });
        out.info(`snapshot ${id.slice(0, 8)} → ${newId.slice(0, 8)}: tags ${tags.join(',') || '(none)'}`);
        out.print(newId);
      }
    } finally {
      await lock.release();
    }
    out.emit('summary', { changed, unchanged });
    if (changed + unchanged > 1) out.info(`${changed} snapshot${changed === 1 ? '' : 's'} changed, ${unchanged} unchanged`);
  },
});
