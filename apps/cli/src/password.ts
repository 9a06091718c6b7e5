import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile, stat } from 'node:fs/promises';
import { makeDirectory } from '@kiwi-backup/core';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { CliError, ExitCode, UsageError } from './exit-codes.js';
import { MAX_PASSWORD_FILE, readSmallFile } from './small-file.js';

/** Where a password came from (never the password itself). */
export type PasswordSource = 'env' | 'file' | 'command' | 'default-password-file' | 'generated' | 'prompt';

/** Largest password-command output accepted (a password, not a file). */
const MAX_COMMAND_OUTPUT = 64 * 1024;
/** How long a password command may take when no one is at a terminal to answer it (cron, a service). */
export const PASSWORD_COMMAND_TIMEOUT_MS = 120_000;

/**
 * Run a password command (`--password-command`, `KIWI_PASSWORD_COMMAND`, the config's
 * `passwordCommand`) through the shell: its stdout, without the trailing newline, is the
 * password. Its stdin and stderr are the terminal's, so it may prompt (gpg, pass). A command
 * that cannot start, fails, prints nothing or too much is a usage error (exit 2) naming where
 * the command came from, never its output, nor its text (it may hold a secret). Without a
 * terminal on stdin (cron, a service), one that has not finished after `timeoutMs` (default
 * {@link PASSWORD_COMMAND_TIMEOUT_MS}) is killed and is that error too, instead of a job that
 * hangs for ever; on a terminal it may wait for its user. One that prints more than
 * {@link MAX_COMMAND_OUTPUT} is stopped there, at once, whatever it runs.
 */
export async function runPasswordCommand(command: string, source: string, timeoutMs = process.stdin.isTTY ? 0 : PASSWORD_COMMAND_TIMEOUT_MS): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const chunks: Buffer[] = [];
    /** True the first time (the outcome is this one), false once settled. */
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      if (timer) clearTimeout(timer);
      return true;
    };
    const fail = (why: string) => {
      if (!settle()) return;
      // What a failed command printed may be the password (or part of it).
      for (const c of chunks) c.fill(0);
      reject(new UsageError(`the password command (${source}) ${why}`));
    };
    // (Its own process group when it may be timed out: the whole of it is killed then. Not on a
    // terminal: a new session would have no terminal to prompt on.)
    const ownGroup = timeoutMs > 0;
    let child: ChildProcess;
    try {
      child = spawn(command, { shell: true, stdio: ['inherit', 'pipe', 'inherit'], detached: ownGroup });
    } catch (err) {
      fail(`could not be started: ${(err as Error).message}`);
      return;
    }
    /**
     * Stop it now, without waiting for 'close': the shell may have forked what it runs (dash runs
     * `yes` as its child), and what it started keeps the output open after the shell is killed. Its
     * output is no longer read (a writer left over dies of SIGPIPE at its next write), and it is
     * killed: its whole group when it has one, else the shell.
     */
    const stop = (): void => {
      child.stdout!.destroy();
      try {
        if (!ownGroup || child.pid === undefined) throw new Error('no group of its own');
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    let size = 0;
    child.stdout!.on('data', (d: Buffer) => {
      if (settled) return;
      size += d.byteLength;
      if (size > MAX_COMMAND_OUTPUT) {
        d.fill(0);
        stop();
        fail(`printed more than ${MAX_COMMAND_OUTPUT / 1024} KiB; it must print only the password`);
        return;
      }
      chunks.push(d);
    });
    child.on('error', (err) => fail(`could not be started: ${err.message}`));
    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        stop();
        fail(`did not finish within ${Math.round(timeoutMs / 1000)} s (with no terminal to answer it); it must print the password and exit`);
      }, timeoutMs);
      timer.unref();
    }
    child.on('close', (code, signal) => {
      if (settled) return;
      if (signal) return fail(`was killed by ${signal}`);
      if (code !== 0) return fail(`failed with exit code ${code}${code === 127 ? ' (command not found?)' : ''}`);
      const out = Buffer.concat(chunks);
      for (const c of chunks) c.fill(0);
      const password = out.toString('utf8').replace(/(\r?\n)+$/, '');
      out.fill(0);
      if (password === '') return fail('printed no password');
      if (settle()) resolve(password);
    });
  });
}

/**
 * Read a password file: its first line. A regular file or a pipe (`--password-file <(pass show backup)`,
 * `/dev/stdin` fed by a pipe) of at most {@link MAX_PASSWORD_FILE}; anything else (`/dev/zero`, a terminal)
 * is a usage error naming the file (see {@link readSmallFile}). A file that group or others may access is
 * still used, with a warning through `warn` (as restic does; OpenSSH refuses such private keys outright).
 */
export async function readPasswordFile(path: string, warn?: (message: string) => void): Promise<string> {
  const bytes = await readSmallFile(path, {
    what: 'password file',
    max: MAX_PASSWORD_FILE,
    pipe: true,
    onOpen: (st) => {
      const loose = st.isFile() ? looseMode(st.mode) : undefined;
      if (warn && loose) warn(`password file ${path} can be read or changed by other users (mode ${loose}): run \`chmod 600 ${path}\``);
    },
  });
  const text = bytes.toString('utf8');
  bytes.fill(0);
  // Like restic: the first line is the password; a trailing newline is not part of it.
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line.length === 0) throw new UsageError(`password file ${path} is empty`);
  return line;
}

/**
 * A file's permission bits as octal (`0644`) when group or others have any access to it
 * (`mode & 0o077`, OpenSSH's rule for private keys); undefined when only the owner has, or on Windows.
 */
function looseMode(fileMode: number): string | undefined {
  if (process.platform === 'win32') return undefined;
  const mode = fileMode & 0o777;
  return mode & 0o077 ? `0${mode.toString(8).padStart(3, '0')}` : undefined;
}

/**
 * Create the password file of the default repository: 32 random bytes, base64url, mode 0600.
 * Refuses to overwrite an existing file.
 */
export async function generatePasswordFile(path: string): Promise<string> {
  await makeDirectory(dirname(path), { mode: 0o700 });
  const password = randomBytes(32).toString('base64url');
  await writeFile(path, `${password}\n`, { mode: 0o600, flag: 'wx' });
  return password;
}

export async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Ask for a password on the terminal without echoing it. */
export async function promptPassword(question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new UsageError('no password given and no terminal to ask on: set KIWI_PASSWORD, KIWI_PASSWORD_FILE or --password-file');
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return await new Promise<string>((resolve, reject) => {
    let value = '';
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          done();
          process.stderr.write('\n');
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          process.stderr.write('\n');
          reject(new CliError('interrupted', ExitCode.Interrupted));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
    };
    stdin.on('data', onData);
  });
}
