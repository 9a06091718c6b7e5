/**
 * `kiwi backup --stdin-from-command <cmd>`: a command's standard output as the content of one file.
 * The content stream throws when the command fails (non-zero exit, killed, cannot start), which
 * fails the backup: no snapshot is written (see `BackupOptions.files`).
 */
import { spawn } from 'node:child_process';
import { withoutSecrets, type ContentSource } from '@kiwi-backup/core';
import { UsageError } from './exit-codes.js';

/** Bytes of the command's stderr kept for messages. */
const STDERR_TAIL = 4096;
/** Lines of it shown in a message. */
const STDERR_LINES = 10;

/** The file name `--stdin-filename` gives: a relative path with `/` separators (no `.`/`..` parts). */
export function stdinFileName(name: string): string {
  const parts = name.split('/').filter((p) => p !== '');
  if (parts.length === 0 || parts.some((p) => p === '.' || p === '..' || p.includes('\0'))) {
    throw new UsageError(`--stdin-filename: "${name}" is not a file name (a relative path without "." or ".." parts)`);
  }
  return parts.join('/');
}

/** The last lines of a command's stderr. */
function lastLines(bytes: Buffer): string {
  const lines = bytes.toString('utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
  return lines.slice(-STDERR_LINES).join('\n');
}

/**
 * A content source that runs `command` through the shell (`/bin/sh -c`; `cmd.exe /c` on Windows)
 * when the backup reads it, and yields its stdout. `onStderr` gets the last lines of its stderr
 * once it ended (also on success). `signal` kills it (SIGTERM). Its environment is Kiwi's without
 * Kiwi's own secrets (the repository and SFTP passwords: its stderr lands in messages and logs);
 * the AWS credentials stay, since a command like `aws s3 cp … -` may need them and it is the
 * user's own command line, not a plug-in's.
 */
export function commandOutput(command: string, opts: { signal?: AbortSignal; onStderr?: (tail: string) => void } = {}): ContentSource {
  return () =>
    (async function* run(): AsyncGenerator<Buffer> {
      const env = withoutSecrets(process.env, ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']);
      const child = spawn(command, { shell: true, env, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.signal ? { signal: opts.signal } : {}) });
      let tail = Buffer.alloc(0);
      child.stderr.on('data', (d: Buffer) => {
        tail = Buffer.concat([tail, d]);
        if (tail.length > STDERR_TAIL) tail = tail.subarray(tail.length - STDERR_TAIL);
      });
      let startError: Error | undefined;
      const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        child.on('error', (err) => {
          startError ??= err;
          resolve({ code: null, signal: null });
        });
        child.on('close', (code, signal) => resolve({ code, signal }));
      });
      let finished = false;
      try {
        for await (const chunk of child.stdout) yield chunk as Buffer;
        const { code, signal } = await ended;
        finished = true;
        const stderr = lastLines(tail);
        opts.onStderr?.(stderr);
        if (startError) throw new Error(`command ${JSON.stringify(command)} could not run: ${startError.message}`);
        if (code !== 0) {
          throw new Error(
            `command ${JSON.stringify(command)} ${signal ? `was killed by ${signal}` : `failed with exit code ${code}`}${stderr ? `; its stderr ends with:\n${stderr}` : ' (no stderr output)'}`,
          );
        }
      } finally {
        if (!finished && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      }
    })();
}
