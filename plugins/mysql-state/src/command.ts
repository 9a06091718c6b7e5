import { spawn, type SpawnOptionsWithStdioTuple, type StdioNull, type StdioPipe } from 'node:child_process';
import { withoutSecrets, type Logger } from '@kiwi-backup/core';

/** A command: an argv array (run directly) or a string (run by the shell). */
export type CommandSpec = string | readonly string[];

export function describeCommand(cmd: CommandSpec): string {
  return typeof cmd === 'string' ? cmd : cmd.join(' ');
}

/**
 * Run a service command (`service mysql stop`…) to its end, logging its output, and kill its process group
 * if it outlives `timeoutMs`. Rejects with the exit code and the last lines of output on failure. The
 * command gets Kiwi's environment without Kiwi's secrets (`SECRET_ENV_VARS`): its output goes to the log.
 */
export function runCommand(cmd: CommandSpec, timeoutMs: number, log: Logger): Promise<void> {
  const label = describeCommand(cmd);
  return new Promise((resolve, reject) => {
    const options: SpawnOptionsWithStdioTuple<StdioNull, StdioPipe, StdioPipe> = {
      env: withoutSecrets(),
      detached: process.platform !== 'win32',
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
    };
    const child = typeof cmd === 'string' ? spawn(cmd, { ...options, shell: true }) : spawn(cmd[0]!, cmd.slice(1), options);
    const tail: string[] = [];
    const onData = (level: 'info' | 'warn') => (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split(/\r?\n/)) {
        if (line === '') continue;
        tail.push(line);
        if (tail.length > 10) tail.shift();
        log[level](`${label}: ${line}`);
      }
    };
    child.stdout.on('data', onData('info'));
    child.stderr.on('data', onData('warn'));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGTERM');
      setTimeout(() => killGroup(child.pid, 'SIGKILL'), 2_000).unref();
    }, timeoutMs);
    const output = () => (tail.length ? `; last output:\n  ${tail.join('\n  ')}` : '');
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`\`${label}\` could not be run: ${err.message}`));
    });
    // Wait for 'exit', then briefly for the output: a server the command started in the background may keep
    // the pipes open for ever.
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        child.stdout.destroy();
        child.stderr.destroy();
        if (timedOut) reject(new Error(`\`${label}\` did not finish within ${timeoutMs} ms and was killed${output()}`));
        else if (code === 0) resolve();
        else reject(new Error(`\`${label}\` failed with ${signal ? `signal ${signal}` : `exit code ${code}`}${output()}`));
      };
      child.once('close', settle);
      setTimeout(settle, 200);
    });
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    if (process.platform === 'win32') process.kill(pid, signal);
    else process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
