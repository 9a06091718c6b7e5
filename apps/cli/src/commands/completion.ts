import { defineCommand } from 'citty';
import { assertKnownArgs, closestName } from '../args.js';
import { ExitCode, UsageError } from '../exit-codes.js';
import { SHELLS, completionScript, type Shell } from '../completion/scripts.js';
import { describeAll, withDocs, type CommandLoaders } from '../help/model.js';

const args = {
  shell: { type: 'positional', required: true, description: 'The shell: bash, zsh or fish' },
} as const;

/** `kiwi completion <shell>`: prints a completion script (no repository, no config needed). */
export default withDocs(
  defineCommand({
    meta: { name: 'completion', description: 'Print a shell completion script (bash, zsh or fish)' },
    args,
    async run({ args: parsed }) {
      try {
        assertKnownArgs(parsed as Record<string, unknown>, args);
        const shell = String(parsed.shell);
        if (!(SHELLS as readonly string[]).includes(shell)) {
          const guess = closestName(shell, SHELLS);
          throw new UsageError(`unknown shell "${shell}"${guess ? ` (did you mean "${guess}"?)` : ''}; choose bash, zsh or fish`);
        }
        const { subCommands } = await import('../main.js');
        const commands = await describeAll(subCommands as unknown as CommandLoaders);
        process.stdout.write(completionScript(shell as Shell, commands));
      } catch (err) {
        process.stderr.write(`kiwi completion: ${(err as Error).message}\n`);
        process.exitCode = err instanceof UsageError ? ExitCode.Usage : ExitCode.Failure;
      }
    },
  }),
  {
    examples: [
      'source <(kiwi completion bash)',
      'kiwi completion zsh > "${fpath[1]}/_kiwi"',
      'kiwi completion fish > ~/.config/fish/completions/kiwi.fish',
    ],
  },
);
