/**
 * known_hosts files: plain and hashed (`|1|salt|HMAC-SHA1`) host fields, `[host]:port`, `!`
 * negation and wildcards, `@revoked` and `@cert-authority` markers, and appending an accepted key.
 * Kiwi's own code: no maintained npm package reads known_hosts (the registry has none that handles
 * hashed entries and markers; ssh2, which Kiwi uses for SSH, leaves host-key checking to the caller),
 * and this is a line format of four fields that OpenSSH documents in sshd(8).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { makeDirectorySync } from '@kiwi-backup/core';
import { matchPatternList } from './ssh-config.js';

/** OpenSSH-style fingerprint of a public key blob: `SHA256:<base64 without padding>`. */
export function fingerprintOf(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/** The key type inside an SSH public key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`...). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const len = keyBlob.readUInt32BE(0);
  if (len > 64 || 4 + len > keyBlob.length) return 'unknown';
  return keyBlob.subarray(4, 4 + len).toString('latin1');
}

/** The name OpenSSH looks up in known_hosts: `host` on port 22, else `[host]:port`. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Normalize a fingerprint given by a user: accepts `SHA256:xxx`, with or without `=` padding. */
export function normalizeFingerprint(fp: string): string {
  const t = fp.trim();
  const m = /^SHA256:([A-Za-z0-9+/]+)=*$/.exec(t);
  if (!m) {
    throw new Error(
      `host key fingerprint ${JSON.stringify(t)} is not in OpenSSH's SHA256 form (e.g. SHA256:jN0t5Y...; see \`ssh-keygen -lf <key.pub>\`)`,
    );
  }
  return `SHA256:${m[1]}`;
}

export interface KnownHostEntry {
  file: string;
  line: number;
  marker?: 'revoked' | 'cert-authority';
  keyType: string;
  key: Buffer;
}

function hashedMatch(field: string, name: string): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(salt, name))
  const parts = field.split('|');
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2]!, 'base64');
  const want = Buffer.from(parts[3]!, 'base64');
  const got = createHmac('sha1', salt).update(name).digest();
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Does a known_hosts host field (comma list of patterns, or one hashed entry) match `name`? */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|')) return hashedMatch(field, name);
  return matchPatternList(field.split(','), name);
}

/** Every entry in `files` whose host field matches one of `names`. Missing files are skipped. */
export function findKnownHosts(files: readonly string[], names: readonly string[]): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const lines = text.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      const words = line.split(/\s+/);
      let marker: KnownHostEntry['marker'];
      if (words[0]!.startsWith('@')) {
        const m = words.shift()!;
        if (m === '@revoked') marker = 'revoked';
        else if (m === '@cert-authority') marker = 'cert-authority';
        else continue;
      }
      const [hosts, keyType, keyB64] = words;
      if (!hosts || !keyType || !keyB64) continue;
      if (!names.some((n) => hostFieldMatches(hosts, n))) continue;
      const key = Buffer.from(keyB64, 'base64');
      out.push({ file, line: i + 1, keyType, key, ...(marker && { marker }) });
    }
  }
  return out;
}

export type HostKeyVerdict =
  | { ok: true; how: string }
  | { ok: false; reason: 'unknown' | 'changed' | 'revoked' | 'mismatch' | 'other-type'; detail?: string };

/**
 * Check a server's host key blob against known_hosts entries that matched the host.
 * - same key (not revoked) → ok
 * - a `@revoked` entry with this key → revoked
 * - an entry of the same key type with a different key → changed (possible MITM)
 * - only entries of other key types → other-type
 * - no entries → unknown
 */
export function checkKnownHosts(entries: readonly KnownHostEntry[], key: Buffer): HostKeyVerdict {
  const type = keyTypeOf(key);
  if (entries.some((e) => e.marker === 'revoked' && e.key.equals(key))) return { ok: false, reason: 'revoked' };
  const plain = entries.filter((e) => e.marker === undefined);
  const same = plain.find((e) => e.key.equals(key));
  if (same) return { ok: true, how: `${same.file}:${same.line}` };
  const sameType = plain.find((e) => e.keyType === type);
  if (sameType) return { ok: false, reason: 'changed', detail: `${sameType.file}:${sameType.line}` };
  if (plain.length > 0) {
    return {
      ok: false,
      reason: 'other-type',
      detail: plain.map((e) => `${e.keyType} at ${e.file}:${e.line}`).join(', '),
    };
  }
  return { ok: false, reason: 'unknown' };
}

/** Append `name keytype base64` to a known_hosts file (creating it and its directory, private). */
export function appendKnownHost(file: string, name: string, key: Buffer): void {
  const dir = dirname(file);
  if (!existsSync(dir)) makeDirectorySync(dir, { mode: 0o700 });
  let prefix = '';
  try {
    const cur = readFileSync(file, 'utf8');
    if (cur.length > 0 && !cur.endsWith('\n')) prefix = '\n';
  } catch {
    // new file
  }
  appendFileSync(file, `${prefix}${name} ${keyTypeOf(key)} ${key.toString('base64')}\n`, { mode: 0o600 });
}

/** ssh2 `serverHostKey` algorithm names for a known_hosts key type. */
export function hostKeyAlgorithmsFor(keyType: string): string[] {
  if (keyType === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  return [keyType];
}
