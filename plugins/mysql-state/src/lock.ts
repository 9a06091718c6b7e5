import type mysql from 'mysql2/promise';
import { versionAtLeast } from './connection.js';

/**
 * How to hold writes off:
 * - `backup-stage`: MariaDB ≥ 10.4's `BACKUP STAGE START … BLOCK_COMMIT`. It does not wait for running
 *   queries to finish before it starts blocking (FLUSH TABLES WITH READ LOCK does, and stalls every
 *   client behind one long SELECT while it waits), and it is what MariaDB's own backup tool uses.
 * - `flush-tables`: `FLUSH TABLES WITH READ LOCK`, for MySQL and older MariaDB.
 * Either way reads keep working, writes (and commits) wait until the lock is released.
 */
export type LockMethod = 'backup-stage' | 'flush-tables';

export function chooseLockMethod(version: string, wanted: 'auto' | LockMethod): LockMethod {
  if (wanted !== 'auto') return wanted;
  return /mariadb/i.test(version) && versionAtLeast(version, [10, 4, 1]) ? 'backup-stage' : 'flush-tables';
}

const TAKE: Record<LockMethod, readonly string[]> = {
  'backup-stage': ['BACKUP STAGE START', 'BACKUP STAGE FLUSH', 'BACKUP STAGE BLOCK_DDL', 'BACKUP STAGE BLOCK_COMMIT'],
  'flush-tables': ['FLUSH TABLES WITH READ LOCK'],
};
const RELEASE: Record<LockMethod, string> = {
  'backup-stage': 'BACKUP STAGE END',
  'flush-tables': 'UNLOCK TABLES',
};

/** Take the global lock on `conn`, giving up after `timeoutSeconds` (lock_wait_timeout) if it cannot. */
export async function takeLock(conn: mysql.Connection, method: LockMethod, timeoutSeconds: number): Promise<void> {
  await conn.query('SET SESSION lock_wait_timeout = ?', [Math.max(1, Math.round(timeoutSeconds))]);
  for (const sql of TAKE[method]) await conn.query(sql);
}

export async function releaseLock(conn: mysql.Connection, method: LockMethod): Promise<void> {
  await conn.query(RELEASE[method]);
}
