/**
 * Everything generated from the command definitions in main.ts's table: docs/cli.md and the man
 * pages. `pnpm docs:cli` (scripts/docs-cli.mjs) writes them; a test checks they are up to date.
 */
import { defineCommand } from 'citty';
import { globalArgs } from './args.js';
import { subCommands } from './main.js';
import { allCommands, describeAll, describeCommand, leafCommands, type CommandLoaders } from './help/model.js';
import { cliMarkdown } from './help/markdown.js';
import { mainManPage, manName, manPage } from './help/man.js';
import { VERSION } from './version.js';

/** The man pages' date: fixed per release, so the files only change when the definitions do. */
export const MAN_DATE = '2026-12-01';

/** Every runnable command (a group's subcommands instead of the group), described, for tests that cover each. */
export async function describeCommands() {
  return leafCommands(await describeAll(subCommands as unknown as CommandLoaders));
}

/** Generated files by path relative to the repository root. */
export async function generatedDocs(): Promise<Map<string, string>> {
  const commands = await describeAll(subCommands as unknown as CommandLoaders);
  const globals = (await describeCommand('kiwi', defineCommand({ meta: { name: 'kiwi' }, args: globalArgs }))).options;
  const files = new Map<string, string>();
  files.set('docs/cli.md', cliMarkdown(commands, globals));
  files.set('apps/cli/man/kiwi.1', mainManPage(commands, globals, VERSION, MAN_DATE));
  for (const c of allCommands(commands)) files.set(`apps/cli/man/${manName(c)}.1`, manPage(c, VERSION, MAN_DATE));
  return files;
}
