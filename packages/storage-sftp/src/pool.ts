/**
 * The connections of one storage: up to `connections` SSH connections, opened on first use and
 * shared by the calls in progress (the least busy first); dead ones are dropped and replaced.
 */
import { posix } from 'node:path';
import { StorageError } from '@kiwi-backup/core';
import { buildAuth } from './auth.js';
import { disposeConn, openConn, type Conn, type ConnTarget } from './connection.js';
import { opError } from './errors.js';
import type { Resolved } from './options.js';

/** The connection pool behind one SFTP storage. Building it checks the credentials (see {@link buildAuth}). */
export class SftpPool {
  readonly r: Resolved;
  readonly location: string;
  private readonly target: ConnTarget;
  private live: Conn[] = [];
  private opening = new Set<Promise<Conn>>();
  private nextId = 1;
  private closed = false;

  constructor(r: Resolved, location: string) {
    this.r = r;
    this.location = location;
    this.target = { r, location, auth: buildAuth(r, location) };
  }

  /** The server path of `rel`, a path relative to the repository. */
  full(rel: string): string {
    return this.r.path === '' ? rel : posix.join(this.r.path, rel);
  }

  private async acquire(): Promise<Conn> {
    if (this.closed) throw new StorageError(`SFTP storage ${this.location} is closed`, { kind: 'other', location: this.location });
    if (this.live.some((c) => c.dead)) {
      for (const c of this.live) if (c.dead) disposeConn(c);
      this.live = this.live.filter((c) => !c.dead);
    }
    let best: Conn | undefined;
    for (const c of this.live) if (!best || c.active < best.active) best = c;
    const total = this.live.length + this.opening.size;
    if (best && (best.active === 0 || total >= this.r.connections)) return best;
    if (total < this.r.connections) {
      const p = openConn(this.target, this.nextId++);
      this.opening.add(p);
      try {
        const c = await p;
        if (this.closed) {
          disposeConn(c);
          throw new StorageError(`SFTP storage ${this.location} is closed`, { kind: 'other', location: this.location });
        }
        this.live.push(c);
        return c;
      } finally {
        this.opening.delete(p);
      }
    }
    // No live connection yet, but one is being opened: share it.
    return await Promise.race(this.opening);
  }

  /** Run `fn` on a connection; what it throws becomes a StorageError naming operation `op` and file `key`. */
  async run<T>(op: string, key: string, fn: (c: Conn) => Promise<T>): Promise<T> {
    const c = await this.acquire();
    c.active++;
    try {
      return await fn(c);
    } catch (err) {
      throw opError(this.location, err, op, key, c);
    } finally {
      c.active--;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const conns = [...this.live];
    this.live = [];
    const opening = [...this.opening];
    await Promise.all(
      conns.map(async (c) => {
        if (c.watchdog) clearInterval(c.watchdog);
        c.dead = true;
        await endWithin(c, CLOSE_WAIT_MS);
      }),
    );
    // Connections still being opened are disposed by acquire() when they arrive.
    await Promise.allSettled(opening);
  }
}

/**
 * How long `close` waits for a server to close a connection after Kiwi said goodbye. ssh2's `end()`
 * resolves when the socket closes, which takes the server's side too: a server that went silent (a
 * network that dropped while the connection sat idle, a stuck sshd) never closes it, and the command
 * that had finished its work would wait for minutes, or for ever.
 */
export const CLOSE_WAIT_MS = 2_000;

/** End `c` politely; after `ms` without the server's side closing, drop the socket. */
async function endWithin(c: Conn, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = c.client.end().then(
    () => undefined,
    () => undefined,
  );
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), ms);
  });
  try {
    if ((await Promise.race([ended, late])) === 'late') (c.client as unknown as { client: { destroy(): void } }).client.destroy();
  } finally {
    clearTimeout(timer);
  }
}
