/**
 * `runPasswordCommand` (`--password-command`, `KIWI_PASSWORD_COMMAND`, the config's `passwordCommand`)
 * on commands that print far more than a password. Imports the source module: no build needed.
 */
import { describe, expect, it } from 'vitest';
import { runPasswordCommand } from '../src/password.js';

describe('a password command that prints too much', () => {
  // `yes` is not the shell itself (dash forks it), so killing the shell alone once left it writing
  // to the pipe, and Kiwi read and dropped its output until the time limit (none on a terminal).
  for (const [title, command] of [
    ['a command the shell starts', 'yes'],
    ['a pipeline', 'yes | cat'],
    ['a command that ignores SIGTERM', "trap '' TERM; yes"],
  ] as const) {
    for (const timeoutMs of [60_000, 0]) {
      it(`is stopped at the limit at once, not at the time limit: ${title}, ${timeoutMs ? 'with' : 'without'} a time limit`, async () => {
        const t0 = Date.now();
        const outcome = await Promise.race([
          runPasswordCommand(command, '--password-command', timeoutMs).then(
            () => 'resolved',
            (err: Error) => err,
          ),
          new Promise<string>((resolve) => setTimeout(() => resolve('still running after 5 s'), 5000).unref()),
        ]);
        expect(outcome).toBeInstanceOf(Error);
        expect((outcome as Error).name).toBe('UsageError');
        expect((outcome as Error).message).toBe('the password command (--password-command) printed more than 64 KiB; it must print only the password');
        expect(Date.now() - t0).toBeLessThan(5000);
      }, 15_000);
    }
  }

  it('a password just under the limit is still read', async () => {
    const password = 'p'.repeat(64 * 1024 - 1);
    await expect(runPasswordCommand(`printf '%s\\n' ${password}`, '--password-command', 10_000)).resolves.toBe(password);
  });
});
