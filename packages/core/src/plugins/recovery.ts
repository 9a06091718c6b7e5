import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from './types.js';

/**
 * The recovery journal: undo actions that plug-ins register before they change the outside world
 * (stop a service, take a lock, mount something), kept as files in `<dataDir>/recovery/` until the
 * plug-in's own `finally` clears them. After `kill -9`, a power cut or an OOM kill the entries are still
 * there, and the next Kiwi start (daemon start, or the next `kiwi backup`) runs each one's undo handler
 * before anything else ({@link PluginRuntime.recover}).
 *
 * Entries are written atomically (temporary file, fsync, rename, fsync of the folder), so a crash
 * leaves either no entry or a whole one. An entry whose process is still running on this host
 * (another Kiwi process, a concurrent backup) is never undone.
 */

/** One registered undo action, as stored in `<dataDir>/recovery/<id>.json`. */
export interface RecoveryEntry {
  /** Random id; also the file name. */
  id: string;
  /** The plug-in that registered it (its undo handler of `action` runs it). */
  plugin: string;
  /** The undo handler's name in the plug-in's `undo` map. */
  action: string;
  /** What the handler needs (JSON). Never put secrets here: it is a plain file. */
  data: unknown;
  /** ISO time of registration. */
  registeredAt: string;
  /** Process and host that registered it: an entry of a process still running is left alone. */
  pid: number;
  host: string;
  /** Linux: the process's start time (clock ticks since boot), so a reused pid is not taken for the same process. */
  processStart?: string;
  /** The backup it belongs to (`backup.id`), if registered during one. */
  backupId?: string;
}

/** What `ctx.recovery.register()` returns: clear it once the outside change is undone. */
export interface RecoveryHandle {
  readonly id: string;
  /** Remove the entry (idempotent). Call it in the `finally` that undoes the change, after the undo succeeded. */
  clear(): Promise<void>;
}

/** `ctx.recovery`: register an undo action before changing the outside world. */
export interface RecoveryApi {
  /**
   * Journal an undo action (`action` names a handler in the plug-in's `undo` map) with its `data`,
   * durably, before the plug-in does what it undoes. Throws when the journal cannot be written: then do
   * not make the change (nothing could undo it after a crash).
   */
  register(action: string, data?: unknown): Promise<RecoveryHandle>;
}

/** What an undo handler gets besides the entry's data. */
export interface UndoContext {
  /** The plug-in's logger and options (as loaded now, not when the entry was written). */
  readonly log: Logger;
  readonly options: Record<string, unknown>;
  readonly dataDir: string;
  readonly signal: AbortSignal;
  /** When and by which process the entry was registered. */
  readonly entry: Readonly<Pick<RecoveryEntry, 'registeredAt' | 'pid' | 'host' | 'backupId' | 'action'>>;
}

/**
 * Undo one journalled change. Return a short description of what was done (logged and recorded), e.g.
 * `"started MySQL"` or `"MySQL was already running"`; throw when it could not be undone (the entry is kept
 * and retried at the next start).
 */
export type UndoHandler = (data: unknown, ctx: UndoContext) => unknown;

/** What happened to one pending entry at start-up. */
export interface RecoveryOutcome {
  plugin: string;
  action: string;
  registeredAt: string;
  pid: number;
  /** `done`: undone and removed; `failed`: kept for the next start; `skipped`: its process still runs. */
  status: 'done' | 'failed' | 'skipped';
  /** The handler's description (done), or why it failed or was skipped. */
  message: string;
}

/** Bounds on what is read back: a journal file is hostile input like any other. */
const MAX_ENTRY_BYTES = 256 * 1024;
const MAX_DATA_BYTES = 64 * 1024;
const MAX_ENTRIES = 1000;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;
const ID_RE = /^[0-9a-f]{32}$/;

/** `<dataDir>/recovery`. */
export function recoveryDir(dataDir: string): string {
  return join(dataDir, 'recovery');
}

/** Linux: field 22 of /proc/<pid>/stat (start time in clock ticks since boot); undefined elsewhere. */
export function processStartTime(pid: number): string | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields after it follow the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let ownStart: string | undefined | null = null;
function ownProcessStart(): string | undefined {
  if (ownStart === null) ownStart = processStartTime(process.pid);
  return ownStart;
}

/** Is the process that registered `entry` still running (so its entry is not ours to undo)? */
export function entryOwnerRunning(entry: Pick<RecoveryEntry, 'pid' | 'host' | 'processStart'>): boolean {
  if (entry.host !== hostname()) return false;
  if (entry.pid === process.pid) {
    // Our own pid: our own entry, unless the pid was reused since (a different start time).
    return entry.processStart === undefined || entry.processStart === ownProcessStart();
  }
  if (!pidAlive(entry.pid)) return false;
  if (entry.processStart === undefined) return true;
  const now = processStartTime(entry.pid);
  return now === undefined || now === entry.processStart;
}

/** Parse and validate one journal file; throws with a reason for anything malformed. */
export function parseRecoveryEntry(text: string, id: string): RecoveryEntry {
  const v = JSON.parse(text) as Record<string, unknown>;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
  const str = (k: string): string => {
    if (typeof v[k] !== 'string' || (v[k] as string).length > 1000) throw new Error(`"${k}" is missing or not a string`);
    return v[k] as string;
  };
  if (v.id !== id) throw new Error('its id does not match its file name');
  const plugin = str('plugin');
  const action = str('action');
  if (!NAME_RE.test(action)) throw new Error(`invalid action name ${JSON.stringify(action)}`);
  const registeredAt = str('registeredAt');
  if (Number.isNaN(Date.parse(registeredAt))) throw new Error('"registeredAt" is not a time');
  const host = str('host');
  const pid = v.pid;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) throw new Error('"pid" is not a process id');
  const entry: RecoveryEntry = { id, plugin, action, data: v.data ?? null, registeredAt, pid, host };
  if (v.processStart !== undefined) entry.processStart = str('processStart');
  if (v.backupId !== undefined) entry.backupId = str('backupId');
  return entry;
}

async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Not supported everywhere (Windows); the rename itself is what matters most.
  } finally {
    await fh?.close();
  }
}

/** The journal of one data directory. Without a data directory (`''`, tests) entries live in memory only. */
export class RecoveryJournal {
  readonly dir: string | undefined;
  readonly #memory = new Map<string, RecoveryEntry>();

  constructor(dataDir: string) {
    this.dir = dataDir ? recoveryDir(dataDir) : undefined;
  }

  /** Write an entry durably (see {@link RecoveryApi.register}). */
  async register(plugin: string, action: string, data: unknown, backupId?: string): Promise<RecoveryHandle> {
    if (typeof action !== 'string' || !NAME_RE.test(action)) {
      throw new TypeError(`recovery.register: invalid action name ${JSON.stringify(action)} (letters, digits, ".", "_", ":", "-"; at most 100)`);
    }
    let dataJson: string;
    try {
      dataJson = JSON.stringify(data ?? null);
    } catch (err) {
      throw new TypeError(`recovery.register("${action}"): data must be JSON-serialisable (${(err as Error).message})`);
    }
    if (Buffer.byteLength(dataJson) > MAX_DATA_BYTES) {
      throw new RangeError(`recovery.register("${action}"): data is larger than ${MAX_DATA_BYTES} bytes`);
    }
    const id = randomBytes(16).toString('hex');
    const entry: RecoveryEntry = {
      id,
      plugin,
      action,
      data: JSON.parse(dataJson) as unknown,
      registeredAt: new Date().toISOString(),
      pid: process.pid,
      host: hostname(),
    };
    const start = ownProcessStart();
    if (start !== undefined) entry.processStart = start;
    if (backupId !== undefined) entry.backupId = backupId;

    if (!this.dir) {
      this.#memory.set(id, entry);
    } else {
      const dir = this.dir;
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const tmp = join(dir, `.${id}.tmp`);
        const fh = await open(tmp, 'wx', 0o600);
        try {
          await fh.writeFile(`${JSON.stringify(entry, null, 2)}\n`);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, join(dir, `${id}.json`));
        await fsyncDir(dir);
      } catch (err) {
        throw new Error(`cannot write the recovery journal in ${dir}: ${(err as Error).message}`, { cause: err });
      }
    }
    let cleared = false;
    return {
      id,
      clear: async () => {
        if (cleared) return;
        await this.remove(id);
        cleared = true;
      },
    };
  }

  /** Remove an entry (no error when it is gone). */
  async remove(id: string): Promise<void> {
    if (!this.dir) {
      this.#memory.delete(id);
      return;
    }
    await rm(join(this.dir, `${id}.json`), { force: true });
    await fsyncDir(this.dir);
  }

  /**
   * The entries on disk, oldest first. Malformed files are renamed to `<name>.invalid` (reported through
   * `onInvalid`) so they are looked at by a person, not retried for ever.
   */
  async list(onInvalid?: (file: string, reason: string) => void): Promise<RecoveryEntry[]> {
    if (!this.dir) return [...this.#memory.values()];
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw new Error(`cannot read the recovery journal ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
    const entries: RecoveryEntry[] = [];
    for (const name of names.filter((n) => n.endsWith('.json')).sort().slice(0, MAX_ENTRIES)) {
      const file = join(this.dir, name);
      const id = name.slice(0, -'.json'.length);
      try {
        if (!ID_RE.test(id)) throw new Error('not a journal file name');
        const st = await stat(file);
        if (!st.isFile()) throw new Error('not a regular file');
        if (st.size > MAX_ENTRY_BYTES) throw new Error(`larger than ${MAX_ENTRY_BYTES} bytes`);
        entries.push(parseRecoveryEntry(await readFile(file, 'utf8'), id));
      } catch (err) {
        const reason = (err as Error).message;
        await rename(file, `${file}.invalid`).catch(() => undefined);
        onInvalid?.(file, reason);
      }
    }
    return entries.sort((a, b) => (a.registeredAt < b.registeredAt ? -1 : a.registeredAt > b.registeredAt ? 1 : 0));
  }

  /** The {@link RecoveryApi} a plug-in sees as `ctx.recovery`. */
  api(plugin: string, backupId?: string): RecoveryApi {
    return Object.freeze({
      register: (action: string, data?: unknown) => this.register(plugin, action, data, backupId),
    });
  }
}

/** Text for a log line: "mysql-state \"start-service\" (registered 2024-… by pid 123)". */
export function describeEntry(e: Pick<RecoveryEntry, 'plugin' | 'action' | 'registeredAt' | 'pid'>): string {
  return `${e.plugin} "${e.action}" (registered ${e.registeredAt} by pid ${e.pid})`;
}
