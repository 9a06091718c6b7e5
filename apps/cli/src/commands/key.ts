import type { KeyInfo, Repository } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { stringArg } from '../args.js';
import { CliError, ExitCode, UsageError } from '../exit-codes.js';
import { escapeControl } from '../format.js';
import { lockOptionsFor, retryLockArgs } from '../lock-wait.js';
import { promptPassword, readPasswordFile } from '../password.js';
import type { Session } from '../session.js';

const ACTIONS = ['list', 'add', 'remove', 'passwd'] as const;
type Action = (typeof ACTIONS)[number];

export default kiwiCommand({
  meta: { name: 'key', description: 'Manage the repository keys (passwords): list, add, remove <id>, passwd' },
  args: {
    action: { type: 'positional', required: true, description: 'list | add | remove <id> | passwd' },
    id: { type: 'positional', required: false, description: 'The key to remove (an id prefix from `kiwi key list`)' },
    'new-password-file': { type: 'string', description: 'Read the new password from this file (default: ask twice on a terminal)' },
    ...retryLockArgs,
  },
  async run({ args, session, signal }) {
    const out = session.out;
    const positional = (args._ ?? []).map(String);
    const action = positional[0] as Action;
    if (!ACTIONS.includes(action)) {
      throw new UsageError(`unknown key action ${JSON.stringify(positional[0] ?? '')}: use one of ${ACTIONS.join(', ')}`);
    }
    const id = positional[1];
    if (action === 'remove' && !id) throw new UsageError('key remove needs the id of the key to remove (see `kiwi key list`)');
    if (action !== 'remove' && positional.length > 1) throw new UsageError(`key ${action} takes no other argument (got ${JSON.stringify(positional.slice(1).join(' '))})`);
    if (action !== 'add' && action !== 'passwd' && args['new-password-file'] !== undefined) {
      throw new UsageError(`--new-password-file is for key add and key passwd, not key ${action}`);
    }
    // Ask for the new password before touching the repository (a typo in it costs nothing then).
    const newPassword = action === 'add' || action === 'passwd' ? await readNewPassword(stringArg(args['new-password-file'])) : undefined;

    const repo = await session.openRepository({ lockOptions: lockOptionsFor(args, session, signal) });
    switch (action) {
      case 'list': {
        const keys = await repo.listKeys();
        for (const k of keys) out.emit('key', { id: k.id, short_id: k.id.slice(0, 8), current: k.current, username: k.username, hostname: k.hostname, created: k.created, ...(k.damaged ? { damaged: k.damaged } : {}) });
        out.emit('summary', { keys: keys.length });
        if (out.json) return;
        out.print(` ${'ID'.padEnd(10)}${'User'.padEnd(12)}${'Host'.padEnd(20)}Created`);
        for (const k of keys) {
          // A key file that cannot be read opens nothing: shown with why, so that it can be removed by its id.
          // (The user, host and time are the key file's, anyone's who can write the storage: escaped.)
          if (k.damaged) out.print(` ${k.id.slice(0, 8).padEnd(10)}(damaged: ${escapeControl(k.damaged)})`);
          else out.print(`${k.current ? '*' : ' '}${k.id.slice(0, 8).padEnd(10)}${escapeControl(k.username.slice(0, 11)).padEnd(12)}${escapeControl(k.hostname.slice(0, 19)).padEnd(20)}${escapeControl(k.created.slice(0, 40))}`);
        }
        out.info(`${keys.length} key${keys.length === 1 ? '' : 's'}; * marks the one this password opened`);
        return;
      }
      case 'add': {
        await repo.lock('shared');
        const added = await repo.addKey(newPassword!);
        out.emit('summary', { action: 'key_added', id: added });
        out.print(`added key ${added.slice(0, 8)}`);
        if (!out.json) out.info(`(full id ${added})`);
        return;
      }
      case 'remove': {
        await repo.lock('exclusive');
        const keys = await repo.listKeys();
        const target = pickKey(keys, id!, session);
        if (target.current) {
          throw new CliError(
            `refusing to remove key ${target.id.slice(0, 8)}: it is the key this password opened${keys.length <= 1 ? ", and the repository's only key" : ''}; open the repository with another key's password to remove it, or use \`kiwi key passwd\` to replace it`,
            ExitCode.Failure,
          );
        }
        if (keys.length <= 1) throw new CliError(`refusing to remove key ${target.id.slice(0, 8)}: it is the repository's only key`, ExitCode.Failure);
        await repo.removeKey(target.id);
        out.emit('summary', { action: 'key_removed', id: target.id });
        out.print(`removed key ${target.id.slice(0, 8)}`);
        return;
      }
      case 'passwd': {
        await repo.lock('exclusive');
        const current = (await repo.listKeys()).find((k) => k.current);
        const added = await repo.addKey(newPassword!);
        // The new key is written before the old one goes: a crash in between leaves both working.
        if (current) await removeOld(repo, current.id, added);
        out.emit('summary', { action: 'password_changed', id: added, removed_id: current?.id ?? null });
        out.print(`password changed: key ${added.slice(0, 8)} replaces ${current ? current.id.slice(0, 8) : 'the old key'}`);
        return;
      }
    }
  },
});

async function removeOld(repo: Repository, oldId: string, newId: string): Promise<void> {
  try {
    await repo.removeKey(oldId);
  } catch (err) {
    throw new CliError(
      `the new key ${newId.slice(0, 8)} was added, but the old key ${oldId.slice(0, 8)} could not be removed: ${(err as Error).message}; both passwords work until you run \`kiwi key remove ${oldId.slice(0, 8)}\``,
      ExitCode.Failure,
    );
  }
}

function pickKey(keys: KeyInfo[], ref: string, session: Session): KeyInfo {
  const prefix = ref.toLowerCase();
  const matches = keys.filter((k) => k.id.startsWith(prefix));
  if (!/^[0-9a-f]+$/.test(prefix)) throw new UsageError(`key id ${JSON.stringify(ref)} is not a hex id (see \`kiwi key list\`)`);
  if (matches.length === 0) throw new CliError(`no key ${ref} in ${session.printableRepo()} (keys: ${keys.map((k) => k.id.slice(0, 8)).join(', ')})`, ExitCode.Failure);
  if (matches.length > 1) throw new CliError(`key id ${ref} is ambiguous; it matches: ${matches.map((k) => k.id).join(', ')}`, ExitCode.Failure);
  return matches[0]!;
}

/** The new password: from --new-password-file, else asked twice on a terminal. */
async function readNewPassword(file: string | undefined): Promise<string> {
  if (file) return readPasswordFile(file);
  if (!process.stdin.isTTY) throw new UsageError('no new password: give --new-password-file <file>, or run on a terminal to be asked');
  const first = await promptPassword('New password: ');
  if (!first) throw new UsageError('empty password');
  const again = await promptPassword('Repeat the new password: ');
  if (again !== first) throw new UsageError('the passwords do not match; nothing changed');
  return first;
}
