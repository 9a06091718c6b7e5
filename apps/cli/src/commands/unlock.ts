import { hostname } from 'node:os';
import { removeLocks, type LockEntry } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';

function describe(e: LockEntry): string {
  if (!e.info) return `${e.file} (unreadable: ${e.error})`;
  const i = e.info;
  return `${e.file}: ${i.exclusive ? 'exclusive' : 'shared'} lock of pid ${i.pid} on ${i.hostname} (user ${i.username}, since ${i.time})`;
}

function entryJson(e: LockEntry) {
  return { file: e.file, ...(e.info ? { lock: e.info } : { error: e.error }), ...(e.stale ? { stale: e.stale } : {}) };
}

export default kiwiCommand({
  meta: { name: 'unlock', description: 'Remove stale locks (owner gone from this host, or not refreshed for 30 min); --remove-all removes every lock' },
  args: {
    'remove-all': { type: 'boolean', description: 'Remove every lock, also live ones (only when no other Kiwi runs on this repository)' },
  },
  async run({ args, session }) {
    const out = session.out;
    const repo = await session.openRepository();
    const removeAll = Boolean(args['remove-all']);
    const result = await removeLocks(repo.lockContext(), { removeAll });
    for (const e of result.removed) {
      out.emit('lock_removed', entryJson(e));
      out.print(`removed ${describe(e)}${e.stale ? ` (stale: ${e.stale})` : ''}`);
    }
    for (const e of result.kept) {
      out.emit('lock_kept', entryJson(e));
      const why = !e.info
        ? 'it is not a lock this repository can read'
        : e.info.hostname === hostname()
          ? 'its process is running'
          : `refreshed recently, by a process on ${e.info.hostname} (from here it cannot be told whether that process still runs)`;
      out.info(`left in place ${describe(e)}: ${why} (--remove-all removes it)`);
    }
    out.emit('summary', { removed: result.removed.length, kept: result.kept.length, remove_all: removeAll });
    if (result.removed.length === 0) out.info(result.kept.length ? 'no stale locks' : 'no locks');
  },
});
