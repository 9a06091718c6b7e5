/**
 * @kiwi-backup/plugin-mysql-state — keep a running MySQL/MariaDB consistent while Kiwi backs it up.
 *
 * Modes (option `mode`):
 * - `service`: stop the server before the backup, start it after and wait until it answers.
 * - `lock`: hold a global read lock on one connection for the whole backup (reads go on, writes wait).
 * - `dump`: stream `mariadb-dump`/`mysqldump --single-transaction` of each database into the snapshot
 *   as virtual files (`mysql/<db>.sql`).
 *
 * In `service` and `lock` mode the server is started/unlocked again in a `finally` around the backup,
 * after success, failure, abort or interruption, and `onBackupStop` does it if that never ran.
 */
import type mysql from 'mysql2/promise';
import { definePlugin, type HookContext, type Next, type PluginApi, type PluginDefinition } from '@kiwi-backup/core';
import { describeCommand, runCommand, type CommandSpec } from './command.js';
import {
  connect,
  connectionError,
  socketHint,
  describeTarget,
  probe,
  redact,
  resolveConnection,
  socketDirectoryProblem,
  waitFor,
  type ConnectionConfig,
} from './connection.js';
import { dumpDatabase, dumpToolVersion, findDumpTool } from './dump.js';
import { chooseLockMethod, releaseLock, takeLock, type LockMethod } from './lock.js';
import { formatMs, parseOptions } from './options.js';
import { DEFAULT_PID_FILES, detectServiceCommands, resolvePidFile, serverPidFromFile, waitForExit, type ServiceCommands } from './service.js';

export { readOptionFile, type OptionFile } from './option-file.js';
export { resolveConnection, describeTarget, DEFAULT_SOCKETS, trustedSocket, type ConnectionConfig, type ConnectionOptions } from './connection.js';
export { DEFAULT_DUMP_ARGS } from './dump.js';
export type { CommandSpec } from './command.js';
export type { LockMethod } from './lock.js';
export type { Mode, MysqlStateOptions } from './options.js';
export { detectServiceCommands, SERVICE_NAMES, type ServiceCommands, type ServiceProbe } from './service.js';


/** Databases that are the server's own, never dumped unless named. */
const SYSTEM_DATABASES = new Set(['information_schema', 'performance_schema', 'mysql', 'sys']);

/** The database's state for one backup: how to put it back, and whether that happened. */
interface Hold {
  /** Start / unlock the database. Runs once however often it is called. */
  restore(): Promise<void>;
  /** Set once `onBackupStart` has finished putting the database back. */
  settled: boolean;
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= fn());
}

export default definePlugin((options: Record<string, unknown>, api: PluginApi): PluginDefinition => {
  const settings = parseOptions(options);
  /** Holds of running backups, keyed by the backup's shared `state` object. */
  const holds = new WeakMap<object, Hold>();
  /** Key of this plug-in's entry in the snapshot metadata: its configured name (`mysql-state` by default). */
  const metaKey = api.name.includes('/') ? 'mysql-state' : api.name;

  let detected: ServiceCommands | undefined;
  /** The stop and start commands: configured, or this machine's service manager's (detected once). */
  function serviceCommands(): ServiceCommands {
    if (settings.stopCommand && settings.startCommand) return { ok: true, stop: settings.stopCommand, start: settings.startCommand, how: 'configured commands' };
    detected ??= detectServiceCommands(settings.service);
    if (!detected.ok) return detected;
    return { ok: true, stop: settings.stopCommand ?? detected.stop, start: settings.startCommand ?? detected.start, how: detected.how };
  }

  /** Start the server with `startCommand` unless it answers, and wait until it does; a message for the log. */
  async function startServer(conn: ConnectionConfig, startCommand: CommandSpec, log: HookContext['log']): Promise<string> {
    if ((await probe(conn, settings.connectTimeoutMs)).up) return `MySQL already answers at ${describeTarget(conn)}; nothing to start`;
    log.info(`starting MySQL: ${describeCommand(startCommand)}`);
    const started = Date.now();
    await runCommand(startCommand, settings.commandTimeoutMs, log);
    const { ok, last } = await waitFor(conn, true, settings.waitTimeoutMs);
    if (!ok) {
      const why = last.up ? '' : `: ${last.error.message}${socketHint(conn, last.error)}`;
      throw new Error(
        redact(`MySQL did not answer within ${formatMs(settings.waitTimeoutMs)} after \`${describeCommand(startCommand)}\` (${describeTarget(conn)})${why}. THE DATABASE MAY BE DOWN`, conn),
      );
    }
    const message = `MySQL answers again (${Date.now() - started} ms after the start command)`;
    log.info(message);
    return `started MySQL (${describeCommand(startCommand)}); it answers again`;
  }

  /**
   * The server's process id, to wait for its exit after the stop command: from `pidFile`, the server's own
   * `@@pid_file` (needs a login), or the usual pid files.
   */
  async function findServerPid(conn: ConnectionConfig, canLogin: boolean): Promise<{ pid: number; file: string } | undefined> {
    const files: string[] = [];
    if (settings.pidFile) files.push(settings.pidFile);
    else {
      if (canLogin) {
        let db: mysql.Connection | undefined;
        try {
          db = await connect(conn, settings.connectTimeoutMs);
          const [rows] = await db.query('SELECT @@pid_file AS pidFile, @@datadir AS dataDir');
          const row = (rows as Array<{ pidFile: unknown; dataDir: unknown }>)[0];
          if (typeof row?.pidFile === 'string' && row.pidFile) files.push(resolvePidFile(row.pidFile, typeof row.dataDir === 'string' ? row.dataDir : undefined));
        } catch {
          // fall back to the usual places
        } finally {
          if (db) await closeConnection(db);
        }
      }
      files.push(...DEFAULT_PID_FILES);
    }
    for (const file of files) {
      const pid = serverPidFromFile(file);
      if (pid !== undefined) return { pid, file };
    }
    return undefined;
  }

  function metadata(ctx: HookContext): Record<string, unknown> {
    return ((ctx.backup.metadata[metaKey] as Record<string, unknown> | undefined) ??= { mode: settings.mode });
  }

  /** Run the backup (`next`) and then restore the database, without letting a restore error hide the backup's. */
  async function holdAround(ctx: HookContext, next: Next, hold: Hold): Promise<void> {
    holds.set(ctx.state, hold);
    let backupFailed = false;
    let backupError: unknown;
    try {
      await next();
    } catch (err) {
      backupFailed = true;
      backupError = err;
    }
    try {
      await hold.restore();
    } catch (err) {
      if (!backupFailed) throw err;
      ctx.log.error((err as Error).message);
    } finally {
      hold.settled = true;
    }
    if (backupFailed) throw backupError;
  }

  /** The server did not answer at backup start. */
  function unreachable(ctx: HookContext, next: Next, conn: ConnectionConfig, err: unknown): Promise<void> {
    const message = connectionError('cannot reach the MySQL server', err, conn).message;
    if (settings.onUnreachable === 'abort') {
      ctx.abort(`${message}. The backup is aborted (option "onUnreachable": "continue" backs up without ${settings.mode} mode)`);
    }
    ctx.log.warn(`${message}; backing up without ${settings.mode} mode (onUnreachable: continue)`);
    metadata(ctx).skipped = message;
    return next();
  }

  /**
   * The connection lock and dump modes work on. A server that does not answer comes back as
   * `{ unreachable }` (the caller goes through {@link unreachable}); one that answers but refuses
   * the login aborts the backup.
   */
  async function connectOrAbort(ctx: HookContext, conn: ConnectionConfig): Promise<{ db: mysql.Connection } | { unreachable: unknown }> {
    try {
      return { db: await connect(conn, settings.connectTimeoutMs) };
    } catch (err) {
      const p = await probe(conn, settings.connectTimeoutMs);
      if (!p.up) return { unreachable: err };
      ctx.abort(connectionError('cannot log in to the MySQL server', err, conn).message);
    }
  }

  async function serviceMode(ctx: HookContext, next: Next, conn: ConnectionConfig): Promise<void> {
    const target = describeTarget(conn);
    if (ctx.backup.dryRun) {
      ctx.log.info(`dry run: MySQL (${target}) is left running; service mode stops it only for real backups`);
      metadata(ctx).dryRun = true;
      return next();
    }
    const commands = serviceCommands();
    if (!commands.ok) ctx.abort(commands.error);
    const { stop: stopCommand, start: startCommand } = commands;
    const before = await probe(conn, settings.connectTimeoutMs);
    if (!before.up) return unreachable(ctx, next, conn, before.error);
    if (before.loginError) {
      ctx.log.debug(`the server answers, but logging in failed (${redact(before.loginError.message, conn)}); service mode does not need to log in`);
    }
    if (before.version) metadata(ctx).serverVersion = before.version;
    const server = await findServerPid(conn, !before.loginError);
    if (!server) {
      ctx.log.warn(
        `cannot find the MySQL server's process id (no readable pid file${settings.pidFile ? ` at ${settings.pidFile}` : ''}): ` +
          'the backup starts once the server stops answering, which may be before it has written everything; set the option "pidFile"',
      );
    }

    // Journal the start before the stop: if Kiwi is killed while MySQL is down, its next start starts MySQL.
    let journal: { clear(): Promise<void> };
    try {
      journal = await ctx.recovery.register('start-service', { startCommand, target, ...(server ? { pid: server.pid } : {}) });
    } catch (err) {
      ctx.abort(`MySQL was not stopped: ${(err as Error).message}`);
    }

    const hold: Hold = {
      settled: false,
      restore: once(async () => {
        await startServer(conn, startCommand, ctx.log);
        await journal.clear();
      }),
    };
    holds.set(ctx.state, hold);

    try {
      ctx.log.info(`stopping MySQL: ${describeCommand(stopCommand)}`);
      await runCommand(stopCommand, settings.commandTimeoutMs, ctx.log);
      const down = await waitFor(conn, false, settings.waitTimeoutMs);
      if (!down.ok) throw new Error(`MySQL (${target}) still answers ${formatMs(settings.waitTimeoutMs)} after the stop command`);
      if (server) {
        // It stops answering early in its shutdown; its files are complete only once the process has exited.
        if (!(await waitForExit(server.pid, settings.waitTimeoutMs))) {
          throw new Error(`the MySQL server process ${server.pid} (${server.file}) is still running ${formatMs(settings.waitTimeoutMs)} after the stop command`);
        }
        ctx.log.info(`MySQL has stopped (process ${server.pid} exited)`);
      }
      metadata(ctx).stoppedAt = new Date().toISOString();
    } catch (err) {
      // Whatever the stop command left behind, make sure the server runs before giving up.
      try {
        await hold.restore();
      } catch (restoreErr) {
        ctx.log.error((restoreErr as Error).message);
      } finally {
        hold.settled = true;
      }
      ctx.abort(`could not stop MySQL: ${redact((err as Error).message, conn)}`);
    }
    return holdAround(ctx, next, hold);
  }

  async function lockMode(ctx: HookContext, next: Next, conn: ConnectionConfig): Promise<void> {
    const target = describeTarget(conn);
    const opened = await connectOrAbort(ctx, conn);
    if ('unreachable' in opened) return unreachable(ctx, next, conn, opened.unreachable);
    const db = opened.db;
    // Reported errors on this connection mean the lock is gone; never let them crash the process.
    let lost: string | undefined;
    let releasing = false;
    const meta = metadata(ctx);
    const onLost = (err: unknown) => {
      if (lost !== undefined || releasing) return;
      lost = redact(err instanceof Error ? err.message : String(err), conn);
      ctx.log.error(
        `GLOBAL READ LOCK LOST: the connection to ${target} holding it failed during the backup (${lost}). ` +
          'Writes were possible from then on: this backup of the database files may be inconsistent.',
      );
      meta.lockLost = { at: new Date().toISOString(), reason: lost };
    };
    db.on('error', onLost);

    let method: LockMethod;
    try {
      const [rows] = await db.query('SELECT VERSION() AS version');
      const version = String((rows as Array<{ version: unknown }>)[0]?.version);
      method = chooseLockMethod(version, settings.lockMethod);
      ctx.log.info(`taking the global read lock on ${target} (${method === 'backup-stage' ? 'BACKUP STAGE' : 'FLUSH TABLES WITH READ LOCK'})`);
      const started = Date.now();
      await takeLock(db, method, settings.lockTimeoutMs / 1000);
      ctx.log.info(`locked in ${Date.now() - started} ms; writes wait until the backup ends`);
      Object.assign(meta, { serverVersion: version, lockMethod: method, lockedAt: new Date().toISOString() });
    } catch (err) {
      releasing = true;
      db.destroy(); // closing the connection drops whatever part of the lock it took
      ctx.abort(connectionError('could not take the global read lock', err, conn).message);
    }

    const keepAlive = setInterval(() => {
      db.query('SELECT 1').catch(onLost);
    }, settings.keepAliveMs);
    keepAlive.unref();

    const hold: Hold = {
      settled: false,
      restore: once(async () => {
        clearInterval(keepAlive);
        releasing = true;
        if (lost === undefined) {
          try {
            await releaseLock(db, method);
            ctx.log.info(`released the global read lock on ${target}`);
          } catch (err) {
            ctx.log.warn(`releasing the lock failed (${redact((err as Error).message, conn)}); closing the connection releases it`);
          }
        }
        await closeConnection(db);
      }),
    };
    return holdAround(ctx, next, hold);
  }

  async function dumpMode(ctx: HookContext, next: Next, conn: ConnectionConfig): Promise<void> {
    const tool = settings.dumpCommand ?? findDumpTool();
    if (!tool) {
      ctx.abort('neither mariadb-dump nor mysqldump was found on the PATH: install the MariaDB/MySQL client or set the "dumpCommand" option');
    }
    const target = describeTarget(conn);
    const opened = await connectOrAbort(ctx, conn);
    if ('unreachable' in opened) return unreachable(ctx, next, conn, opened.unreachable);
    const db = opened.db;
    let version: string;
    let databases: string[];
    try {
      const [v] = await db.query('SELECT VERSION() AS version');
      version = String((v as Array<{ version: unknown }>)[0]?.version);
      const [rows] = await db.query('SHOW DATABASES');
      const present = (rows as Array<Record<string, unknown>>).map((r) => String(Object.values(r)[0]));
      if (settings.databases) {
        const missing = settings.databases.filter((d) => !present.includes(d));
        if (missing.length > 0) ctx.abort(`database${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not found on ${target}`);
        databases = settings.databases;
      } else {
        databases = present.filter((d) => !SYSTEM_DATABASES.has(d)).sort();
      }
    } finally {
      await closeConnection(db);
    }
    if (databases.length === 0) ctx.log.warn(`no databases to dump on ${target}`);
    const files = databases.map((name) => `${settings.dumpDir}/${name}.sql`);
    databases.forEach((name, i) => {
      ctx.addFile(files[i]!, () => abortOnFailure(ctx, dumpDatabase(conn, name, { tool, args: settings.dumpArgs, signal: ctx.signal })), {
        mode: 0o600,
      });
    });
    Object.assign(metadata(ctx), { serverVersion: version, databases, files, tool: dumpToolVersion(tool) ?? tool });
    ctx.log.info(`dumping ${databases.length} database(s) from ${target} into ${settings.dumpDir}/ while the backup runs`);
    await next();
  }

  return {
    name: 'mysql-state',

    /** Recovery after a crash (`kill -9`, power cut) while the server was stopped: start it again. */
    undo: {
      async 'start-service'(data, ctx) {
        const recorded = (data as { startCommand?: unknown } | null)?.startCommand;
        const validRecorded =
          (typeof recorded === 'string' && recorded.trim() !== '') ||
          (Array.isArray(recorded) && recorded.length > 0 && recorded.every((a) => typeof a === 'string'));
        let startCommand: CommandSpec;
        if (validRecorded) startCommand = recorded as CommandSpec;
        else {
          const commands = serviceCommands();
          if (!commands.ok) throw new Error(commands.error);
          startCommand = commands.start;
        }
        const conn = await resolveConnection(settings.connection);
        return startServer(conn, startCommand, ctx.log);
      },
    },

    /** Say at start-up whether the server answers, so a wrong host or password shows before the first backup. */
    async onServerStart(ctx, next) {
      if (settings.mode === 'service') {
        const commands = serviceCommands();
        // A service mode that could never stop the server is a configuration error: say so at start, not at 2:00.
        if (!commands.ok) throw new Error(commands.error);
        ctx.log.info(`service mode: stops and starts MySQL with \`${describeCommand(commands.stop)}\` / \`${describeCommand(commands.start)}\` (${commands.how})`);
      }
      try {
        const conn = await resolveConnection(settings.connection);
        // A configured socket is used as configured; say so when another local user could take its place.
        const exposed = conn.socket !== undefined ? socketDirectoryProblem(conn.socket) : undefined;
        if (exposed) {
          ctx.log.warn(
            `the MySQL socket ${conn.socket} is where other local users can create files (${exposed}): one of them could put ` +
              'a fake server there while MySQL is down and receive the password; use a socket in a directory only the server can write to',
          );
        }
        const p = await probe(conn, settings.connectTimeoutMs);
        if (!p.up) ctx.log.warn(connectionError('the MySQL server does not answer now', p.error, conn).message);
        else if (p.loginError && settings.mode !== 'service') ctx.log.warn(connectionError('cannot log in to the MySQL server', p.loginError, conn).message);
        else ctx.log.info(`MySQL ${p.version ?? ''} answers at ${describeTarget(conn)} (mode ${settings.mode})`);
      } catch (err) {
        ctx.log.warn((err as Error).message);
      }
      await next();
    },

    async onBackupStart(ctx, next) {
      const conn = await resolveConnection(settings.connection).catch((err: Error) => ctx.abort(err.message));
      switch (settings.mode) {
        case 'service':
          return serviceMode(ctx, next, conn);
        case 'lock':
          return lockMode(ctx, next, conn);
        case 'dump':
          return dumpMode(ctx, next, conn);
      }
    },

    /**
     * The safety net: if the start hook never got to put the database back (its `finally` did not run),
     * do it now, before the other plug-ins' stop hooks (a post script may need the database).
     */
    async onBackupStop(ctx, next) {
      const hold = holds.get(ctx.state);
      holds.delete(ctx.state);
      let failure: unknown;
      if (hold && !hold.settled) {
        ctx.log.warn(`the backup ended (${ctx.backup.status}) with MySQL still ${settings.mode === 'service' ? 'stopped' : 'locked'}; restoring it now`);
        try {
          await hold.restore();
        } catch (err) {
          failure = err;
        } finally {
          hold.settled = true;
        }
      }
      await next();
      if (failure !== undefined) throw failure;
    },
  };
});

/**
 * A failed dump aborts the backup: the stream errors (so no truncated dump is stored) and `ctx.abort` stops
 * the backup, so no snapshot is written that silently lacks a database.
 */
async function* abortOnFailure(ctx: HookContext, dump: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  try {
    yield* dump;
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    ctx.abort((err as Error).message);
  }
}

async function closeConnection(db: mysql.Connection): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([db.end(), new Promise<void>((resolve) => (timer = setTimeout(resolve, 5_000)))]);
  } catch {
    // the connection was already broken
  } finally {
    clearTimeout(timer);
    db.destroy();
  }
}
