import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, chmodSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/** Where Debian's openssh-server puts the daemon. Override with `KIWI_SSHD`. */
export const SSHD_PATH = process.env.KIWI_SSHD ?? '/usr/sbin/sshd';
/**
 * util-linux's setpriv (in every Debian install): `--pdeathsig TERM` makes the kernel send sshd
 * SIGTERM when the thread that started it dies, so a test process that is killed (SIGKILL, a
 * crashed runner) does not leave a listening sshd behind. (s3rver exits on IPC disconnect.)
 */
const SETPRIV_PATH = '/usr/bin/setpriv';

/** How to get sshd, for skip/fail messages. */
export const SSHD_INSTALL_HINT =
  'install OpenSSH: `apt-get update && apt-get install -y openssh-server openssh-client` (needs /usr/sbin/sshd and ssh-keygen)';

/** True if the OpenSSH daemon and ssh-keygen are installed. */
export function sshdAvailable(): boolean {
  if (!existsSync(SSHD_PATH)) return false;
  const r = spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' });
  return r.error === undefined;
}

export interface StartSshdOptions {
  /** Port to listen on (default: a free loopback port). */
  port?: number;
  /** sshd `LogLevel` (default `INFO`). */
  logLevel?: 'QUIET' | 'FATAL' | 'ERROR' | 'INFO' | 'VERBOSE' | 'DEBUG';
  /** Extra sshd_config lines. */
  extraConfig?: string[];
  /** Milliseconds to wait for the daemon to accept connections (default 15000). */
  startTimeoutMs?: number;
}

export interface SshdServer {
  /** `127.0.0.1`. */
  readonly host: string;
  readonly port: number;
  /** The user that logs in (the current user). */
  readonly username: string;
  /** An unencrypted ed25519 private key authorized for `username`. */
  readonly privateKeyPath: string;
  /** A second, NOT authorized private key (for wrong-key tests). */
  readonly unauthorizedKeyPath: string;
  /** A known_hosts file holding the server's host key as `[127.0.0.1]:port`. */
  readonly knownHostsPath: string;
  /** The host key line (`ssh-ed25519 AAAA...`). */
  readonly hostPublicKey: string;
  /** The host key fingerprint as OpenSSH prints it (`SHA256:...`, no padding). */
  readonly hostKeyFingerprint: string;
  /** An empty directory (absolute path on the server) the tests' files may live in. */
  readonly root: string;
  /** The server's temp directory (config, keys, log). */
  readonly dir: string;
  /** True while the daemon runs. */
  readonly running: boolean;
  /** The last lines sshd logged (stderr). */
  log(): string;
  /**
   * Stop the daemon AND every session process it forked (so open connections
   * drop, as when a server goes down). Keeps the temp dir, so {@link restart} works.
   */
  kill(): Promise<void>;
  /**
   * Freeze the daemon and all its session processes (SIGSTOP): connections stay open but
   * nothing answers, like a hung server. {@link resume} undoes it. Linux only.
   */
  pause(): void;
  resume(): void;
  /** Start the daemon again on the same port with the same keys. */
  restart(): Promise<void>;
  /** Stop everything and delete the temp dir. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (the OS picks one; small race until the caller binds it). */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The OpenSSH-style `SHA256:<base64, no padding>` fingerprint of a public key line or blob. */
export function sshFingerprint(publicKey: string | Buffer): string {
  const blob = typeof publicKey === 'string' ? Buffer.from(publicKey.trim().split(/\s+/)[1] ?? '', 'base64') : publicKey;
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

function keygen(path: string, comment: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen failed for ${path}: ${r.stderr || r.error?.message}`);
}

/** Descendant pids of `pid` (children, grandchildren...) read from /proc. Linux only; empty elsewhere. */
function descendants(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const children = new Map<number, number[]>();
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${e}/stat`, 'utf8');
    } catch {
      continue;
    }
    // "pid (comm) state ppid ..." — comm may contain spaces/parens, so parse after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(e));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    for (const c of children.get(p) ?? []) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

/** Resolve once `host:port` speaks SSH (sends its `SSH-2.0-` banner). */
async function probeSsh(host: string, port: number): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const sock = connect({ host, port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(2000, () => done(false));
    sock.on('error', () => done(false));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\n')) done(buf.startsWith('SSH-2.0-'));
    });
    sock.on('close', () => done(false));
  });
}

/**
 * Start Debian's OpenSSH daemon (`sshd -D -e -f <temp config>`) as its own process on a
 * loopback port, with a temporary host key and a temporary authorized key for the current
 * user. Public-key authentication only. The caller must `stop()` it.
 *
 * Throws if sshd is not installed (check {@link sshdAvailable} with `requireServer` first).
 */
export async function startSshd(options: StartSshdOptions = {}): Promise<SshdServer> {
  if (!existsSync(SSHD_PATH)) throw new Error(`sshd not found at ${SSHD_PATH}: ${SSHD_INSTALL_HINT}`);
  // Privilege-separation directory that Debian's sshd insists on.
  // (Needs root; a non-root sshd serving only its own user can do without it.)
  try {
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  } catch (err) {
    if (process.getuid?.() === 0) throw err;
  }

  const dir = await mkdtemp(join(tmpdir(), 'kiwi-sshd-'));
  chmodSync(dir, 0o700);
  const host = '127.0.0.1';
  const username = userInfo().username;
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  const clientKey = join(dir, 'id_ed25519');
  const otherKey = join(dir, 'id_ed25519_unauthorized');
  keygen(hostKey, 'kiwi-test-host');
  keygen(clientKey, 'kiwi-test-client');
  keygen(otherKey, 'kiwi-test-unauthorized');
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, readFileSync(`${clientKey}.pub`));
  const root = join(dir, 'files');
  mkdirSync(root);
  const hostPublicKey = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  const hostKeyFingerprint = sshFingerprint(hostPublicKey);
  const configPath = join(dir, 'sshd_config');

  let port = options.port ?? 0;
  let child: ChildProcess | undefined;
  let logLines: string[] = [];
  let running = false;

  const writeConfig = () => {
    const lines = [
      `Port ${port}`,
      `ListenAddress ${host}`,
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UseDNS no',
      'PrintMotd no',
      'MaxStartups 64:30:128',
      'MaxSessions 64',
      `LogLevel ${options.logLevel ?? 'INFO'}`,
      'Subsystem sftp internal-sftp',
      ...(options.extraConfig ?? []),
    ];
    writeFileSync(configPath, lines.join('\n') + '\n');
  };

  const launch = async (): Promise<void> => {
    writeConfig();
    logLines = [];
    const args = ['-D', '-e', '-f', configPath];
    const proc = existsSync(SETPRIV_PATH)
      ? spawn(SETPRIV_PATH, ['--pdeathsig', 'TERM', SSHD_PATH, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(SSHD_PATH, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let exited: string | undefined;
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => {
      logLines.push(...d.split('\n').filter((l) => l.length > 0));
      if (logLines.length > 200) logLines = logLines.slice(-200);
    });
    proc.on('exit', (code, signal) => {
      exited = `exited with ${signal ?? `code ${code}`}`;
      running = false;
    });
    proc.on('error', (err) => {
      exited = `failed to start: ${err.message}`;
      running = false;
    });
    const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
    while (Date.now() < deadline) {
      if (exited !== undefined) throw new Error(`sshd ${exited}: ${logLines.slice(-10).join(' | ')}`);
      if (await probeSsh(host, port)) {
        running = true;
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGKILL');
    throw new Error(`sshd did not accept connections on ${host}:${port} within the timeout: ${logLines.slice(-10).join(' | ')}`);
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
      running = false;
      return;
    }
    // Session processes are forked by the listener and call setsid(), so a process-group
    // kill misses them: collect the whole tree first, then kill it.
    const tree = descendants(proc.pid!);
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGKILL');
    for (const pid of tree) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await exited;
    running = false;
  };

  const signalTree = (signal: NodeJS.Signals): void => {
    const pid = child?.pid;
    if (pid === undefined || !running) return;
    for (const p of [pid, ...descendants(pid)]) {
      try {
        process.kill(p, signal);
      } catch {
        // gone
      }
    }
  };

  // Bind a free port; retry a few times in case another process grabbed it meanwhile.
  for (let attempt = 0; ; attempt++) {
    if (options.port === undefined) port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      await kill();
      if (attempt >= 3 || options.port !== undefined) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  const knownHostsPath = join(dir, 'known_hosts');
  writeFileSync(knownHostsPath, `[${host}]:${port} ${hostPublicKey}\n`);

  return {
    host,
    get port() {
      return port;
    },
    username,
    privateKeyPath: clientKey,
    unauthorizedKeyPath: otherKey,
    knownHostsPath,
    hostPublicKey,
    hostKeyFingerprint,
    root,
    dir,
    get running() {
      return running;
    },
    log: () => logLines.join('\n'),
    kill,
    pause: () => signalTree('SIGSTOP'),
    resume: () => signalTree('SIGCONT'),
    restart: async () => {
      await kill();
      await launch();
    },
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
