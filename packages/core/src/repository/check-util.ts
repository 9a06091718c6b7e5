/** Shared parts of the `check` stages: the context, the capped problem collector, small helpers. */
import type { Storage } from '../storage/types.js';
import type { BlobLocation, CheckAffected, CheckProblem, CheckProgress, CheckReport } from './types.js';
import type { PackEntry } from './pack-format.js';

export interface CheckContext {
  storage: Storage;
  decrypt(data: Uint8Array): Buffer;
  blobIdBytes(data: Uint8Array): Buffer;
  /** Authenticate, decompress and verify a blob's bytes (throws IntegrityError). */
  openBlob(loc: BlobLocation, bytes: Uint8Array): Promise<Buffer>;
  /** Verify a metadata file's name, decrypt and decompress it (throws IntegrityError). */
  openMetadata(bytes: Buffer, file: string, name: string): Promise<Buffer>;
  /** Read and authenticate a pack's own header (throws IntegrityError), for packs no index file lists. */
  readPackHeader(packId: string, size: number): Promise<PackEntry[]>;
}

/** At most this many errors and warnings are kept in the report (all are counted). */
export const MAX_REPORTED_PROBLEMS = 10_000;

/** Collects problems, capped in memory. */
export class CheckReporter {
  readonly errors: CheckProblem[] = [];
  readonly warnings: CheckProblem[] = [];
  readonly counts = { errors: 0, warnings: 0 };
  readonly stats: CheckReport['stats'] = { keys: 0, snapshots: 0, indexFiles: 0, packs: 0, blobs: 0, trees: 0, bytesVerified: 0 };
  affected: CheckAffected[] = [];
  constructor(readonly progress: (p: CheckProgress) => void) {}

  error(file: string, message: string, hint?: string): void {
    this.counts.errors++;
    if (this.errors.length < MAX_REPORTED_PROBLEMS) this.errors.push({ file, message: withoutFile(file, message), ...(hint ? { hint } : {}) });
  }

  warning(file: string, message: string, hint?: string): void {
    this.counts.warnings++;
    if (this.warnings.length < MAX_REPORTED_PROBLEMS) this.warnings.push({ file, message: withoutFile(file, message), ...(hint ? { hint } : {}) });
  }

  report(): CheckReport {
    return { errors: this.errors, warnings: this.warnings, counts: this.counts, affected: this.affected, stats: this.stats };
  }
}

export async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** A problem is shown as `file: message`: a message that names the file first already (an IntegrityError's) loses that prefix. */
function withoutFile(file: string, message: string): string {
  return message.startsWith(`${file}: `) ? message.slice(file.length + 2) : message;
}

export function msg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

