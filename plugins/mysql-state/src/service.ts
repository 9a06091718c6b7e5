import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import type { CommandSpec } from './command.js';

/** Unit / init-script names tried, in order: Debian and Ubuntu call it `mariadb`; others `mysql` or `mysqld`. */
export const SERVICE_NAMES = ['mariadb', 'mysql', 'mysqld'] as const;
const UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'];

/** How to look at the machine (replaced in tests). */
export interface ServiceProbe {
  exists(path: string): boolean;
  /** The executable's path on the PATH, if any. */
  which(name: string): string | undefined;
}

export const systemProbe: ServiceProbe = {
  exists: (p) => existsSync(p),
  which(name) {
    for (const dir of [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
      const candidate = join(dir, name);
      try {
        if (!statSync(candidate).isFile()) continue;
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // keep looking
      }
    }
    return undefined;
  },
};

export type ServiceCommands =
  | { ok: true; stop: CommandSpec; start: CommandSpec; how: string }
  | { ok: false; error: string };

/**
 * The default stop/start commands for this machine: `systemctl stop|start <unit>` when systemd runs,
 * else `service <name> stop|start`, else the init script itself. The name is `service` when given,
 * else the first of mariadb, mysql, mysqld that has a systemd unit (or an init script).
 */
export function detectServiceCommands(service: string | undefined, probe: ServiceProbe = systemProbe): ServiceCommands {
  const systemd = probe.exists('/run/systemd/system');
  const systemctl = systemd ? probe.which('systemctl') : undefined;
  if (systemctl) {
    const unit = service ?? SERVICE_NAMES.find((n) => UNIT_DIRS.some((d) => probe.exists(`${d}/${n}.service`)));
    if (unit) return { ok: true, stop: ['systemctl', 'stop', unit], start: ['systemctl', 'start', unit], how: `systemd unit ${unit}` };
  }
  const name = service ?? SERVICE_NAMES.find((n) => probe.exists(`/etc/init.d/${n}`));
  if (name) {
    if (probe.which('service')) return { ok: true, stop: ['service', name, 'stop'], start: ['service', name, 'start'], how: `service ${name}` };
    if (probe.exists(`/etc/init.d/${name}`)) {
      return { ok: true, stop: [`/etc/init.d/${name}`, 'stop'], start: [`/etc/init.d/${name}`, 'start'], how: `/etc/init.d/${name}` };
    }
  }
  return {
    ok: false,
    error:
      `cannot tell how to stop and start MySQL on this machine: no ${SERVICE_NAMES.join(', ')} ${systemctl ? 'systemd unit' : 'init script'} was found` +
      ' (set the option "service" to the name of its unit, or "stopCommand" and "startCommand")',
  };
}

/** Where Debian, Ubuntu and most packages put the server's pid file. */
export const DEFAULT_PID_FILES = ['/run/mysqld/mysqld.pid', '/var/run/mysqld/mysqld.pid'];
const SERVER_COMMS = new Set(['mariadbd', 'mysqld']);

/**
 * The pid in `file` if it names a running MySQL/MariaDB server process (on Linux its command name is
 * checked, so a stale pid file whose pid was reused is not taken for the server).
 */
export function serverPidFromFile(file: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  if (!processAlive(pid)) return undefined;
  if (process.platform === 'linux') {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (!SERVER_COMMS.has(comm)) return undefined;
    } catch {
      return undefined;
    }
  }
  return pid;
}

/** A relative `@@pid_file` is relative to the data directory. */
export function resolvePidFile(pidFile: string, dataDir: string | undefined): string {
  return isAbsolute(pidFile) || !dataDir ? pidFile : join(dataDir, pidFile);
}

/** Is `pid` a running process? A zombie (exited, not yet reaped by its parent) counts as gone. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (process.platform === 'linux') {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state === 'Z' || state === 'X') return false;
    } catch {
      return false;
    }
  }
  return true;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Wait until process `pid` has exited; false if it still runs after `timeoutMs`. */
export async function waitForExit(pid: number, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
  return true;
}
