import { readFile, writeFile, stat } from 'node:fs/promises';
import { makeDirectory } from '@kiwi-backup/core';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { CliError, ExitCode, UsageError } from './exit-codes.js';

/** Where a password came from (never the password itself). */
export type PasswordSource = 'env' | 'file' | 'default-key-file' | 'generated' | 'prompt';

export async function readPasswordFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read password file ${path}: ${code === 'ENOENT' ? 'no such file' : code ?? String(err)}`);
  }
  // Like restic: the first line is the password; a trailing newline is not part of it.
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line.length === 0) throw new UsageError(`password file ${path} is empty`);
  return line;
}

/**
 * Create the key file of the default repository: 32 random bytes, base64url, mode 0600.
 * Refuses to overwrite an existing file.
 */
export async function generateKeyFile(path: string): Promise<string> {
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
