import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { withoutSecrets } from '@kiwi-backup/core';
import { describeTarget, redact, type ConnectionConfig } from './connection.js';
import { quoteOptionValue } from './option-file.js';

/** The dump tool's default arguments (replaced as a whole by the `dumpArgs` option). */
export const DEFAULT_DUMP_ARGS: readonly string[] = [
  '--single-transaction', // a consistent InnoDB snapshot without locking the tables
  '--quick', // stream rows instead of buffering whole tables
  '--routines',
  '--events',
  '--triggers',
  '--hex-blob',
  '--no-tablespaces', // needs no PROCESS privilege on MySQL 8
  '--skip-dump-date', // an unchanged database dumps to the same bytes, so it deduplicates
  '--default-character-set=utf8mb4',
];

/** Find `mariadb-dump`, else `mysqldump`, on the PATH. */
export function findDumpTool(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  const exts = process.platform === 'win32' ? ['.exe', ''] : [''];
  for (const name of ['mariadb-dump', 'mysqldump']) {
    for (const dir of dirs) {
      for (const ext of exts) {
        const candidate = join(dir, name + ext);
        try {
          accessSync(candidate, constants.X_OK);
          return candidate;
        } catch {
          // keep looking
        }
      }
    }
  }
  return undefined;
}

/** `mariadb-dump  Ver 10.19 Distrib 10.11.6-MariaDB…`, for the snapshot's metadata. */
export function dumpToolVersion(tool: string): string | undefined {
  const res = spawnSync(tool, ['--version'], { encoding: 'utf8', timeout: 10_000, env: withoutSecrets() });
  return res.status === 0 ? res.stdout.trim() : undefined;
}

/**
 * Write the credentials to a private option file (0600, in a 0700 temporary folder), so the password is
 * neither on the command line (visible in `ps`) nor in the environment. Our `[client]` section comes after
 * an `!include` of the user's own option file, so the user's other settings (TLS…) still apply.
 */
async function writeCredentials(c: ConnectionConfig): Promise<{ file: string; dispose: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiwi-mysql-state-'));
  const file = join(dir, 'client.cnf');
  const lines = [
    ...(c.defaultsFile ? [`!include ${c.defaultsFile}`] : []),
    '[client]',
    `user=${quoteOptionValue(c.user)}`,
    ...(c.password !== undefined ? [`password=${quoteOptionValue(c.password)}`] : []),
    ...(c.socket !== undefined ? [`socket=${quoteOptionValue(c.socket)}`, 'protocol=SOCKET'] : []),
    ...(c.socket === undefined ? [`host=${quoteOptionValue(c.host ?? 'localhost')}`, `port=${c.port ?? 3306}`, 'protocol=TCP'] : []),
    '',
  ];
  await writeFile(file, lines.join('\n'), { mode: 0o600 });
  return { file, dispose: () => rm(dir, { recursive: true, force: true }) };
}

export interface DumpOptions {
  tool: string;
  args: readonly string[];
  signal: AbortSignal;
}

/**
 * Stream one database's dump: spawns the dump tool when the backup reads the virtual file, yields its
 * stdout, and throws (so the backup fails) if the tool exits non-zero or is killed. Stopping the read
 * early kills the tool. No temporary copy of the dump is written. The tool gets Kiwi's environment
 * without Kiwi's secrets (`SECRET_ENV_VARS`); its credentials come from the option file.
 */
export async function* dumpDatabase(c: ConnectionConfig, database: string, opts: DumpOptions): AsyncGenerator<Buffer> {
  const credentials = await writeCredentials(c);
  const child = spawn(opts.tool, [`--defaults-extra-file=${credentials.file}`, ...opts.args, database], {
    env: withoutSecrets(),
    stdio: ['ignore', 'pipe', 'pipe'],
    signal: opts.signal,
    windowsHide: true,
  });
  const stderr: string[] = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    stderr.push(text);
    if (stderr.length > 50) stderr.shift();
  });
  let spawnError: Error | undefined;
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (err) => {
      spawnError = err;
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const what = `${opts.tool} of database ${database} (${describeTarget(c)})`;
  let completed = false;
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    const { code, signal } = await ended;
    const detail = redact(stderr.join('').trim().split('\n').slice(-10).join('\n'), c);
    if (opts.signal.aborted) throw new Error(`${what} was stopped: the backup was interrupted`);
    if (spawnError) throw new Error(`${what} could not be run: ${spawnError.message}`);
    if (code !== 0) {
      throw new Error(`${what} failed with ${signal ? `signal ${signal}` : `exit code ${code}`}${detail ? `: ${detail}` : ''}`);
    }
    completed = true;
  } finally {
    if (!completed && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await credentials.dispose();
  }
}
