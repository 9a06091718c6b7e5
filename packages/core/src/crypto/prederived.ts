/**
 * Key derivations begun before Kiwi's modules were loaded.
 *
 * Opening a repository costs one scrypt run (~80 ms with the default parameters), and loading
 * Kiwi's modules costs about as much again; one after the other, they are most of a short
 * command's time. The CLI therefore starts scrypt for the repository's key files as its very first
 * step, in the common cases where it can tell the repository and the password without loading
 * anything (see `apps/cli/src/key-prefetch.ts`), while the modules load. The derivations wait here,
 * on `globalThis` under a registered symbol (that early code imports nothing from core), and
 * {@link takePrederived} hands one out when the key file, its parameters and the password all
 * match exactly. Anything else (a guess that was wrong, a failed derivation) is ignored: the key
 * is then derived as usual. Entries are used once; {@link clearPrederived} zeroes the passwords
 * of those not used.
 */
import { timingSafeEqual } from 'node:crypto';

/** The registry's key on `globalThis`. */
export const PREDERIVED_KEYS = Symbol.for('kiwi.prederivedKeys');

/** One derivation, as the CLI's early code records it. */
export interface PrederivedKey {
  /** The key file's salt, as written in it (base64). */
  salt: string;
  N: number;
  r: number;
  p: number;
  keyLength: number;
  /** The password's bytes (zeroed once used or cleared). */
  password: Buffer;
  key: Promise<Buffer>;
}

function registry(): PrederivedKey[] | undefined {
  const list = (globalThis as Record<symbol, unknown>)[PREDERIVED_KEYS];
  return Array.isArray(list) ? (list as PrederivedKey[]) : undefined;
}

/**
 * The derivation of `password` with this salt and these parameters, when the CLI began one;
 * undefined otherwise (or when it failed: the caller derives the key itself).
 */
export async function takePrederived(salt: string, params: { N: number; r: number; p: number }, keyLength: number, password: Uint8Array): Promise<Buffer | undefined> {
  const list = registry();
  if (!list) return undefined;
  const i = list.findIndex(
    (e) =>
      e !== null &&
      typeof e === 'object' &&
      e.salt === salt &&
      e.N === params.N &&
      e.r === params.r &&
      e.p === params.p &&
      e.keyLength === keyLength &&
      Buffer.isBuffer(e.password) &&
      e.password.byteLength === password.byteLength &&
      timingSafeEqual(e.password, password),
  );
  if (i < 0) return undefined;
  const [entry] = list.splice(i, 1);
  entry!.password.fill(0);
  try {
    const key = await entry!.key;
    return Buffer.isBuffer(key) && key.byteLength === keyLength ? key : undefined;
  } catch {
    return undefined;
  }
}

/** Forget the derivations not used (their passwords zeroed, their keys zeroed when they arrive). */
export function clearPrederived(): void {
  const list = registry();
  if (!list) return;
  for (const e of list.splice(0)) {
    if (Buffer.isBuffer(e?.password)) e.password.fill(0);
    void Promise.resolve(e?.key).then(
      (k) => (Buffer.isBuffer(k) ? k.fill(0) : undefined),
      () => undefined,
    );
  }
}
