/**
 * Authentication and host key checking: which credentials to try in which order, and whether to
 * trust the key the server offers (known_hosts or a configured fingerprint).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import ssh2 from 'ssh2';
import type { AnyAuthMethod } from 'ssh2';
import { StorageError } from '@kiwi-backup/core';
import { HostKeyError, errMessage } from './errors.js';
import {
  appendKnownHost,
  checkKnownHosts,
  findKnownHosts,
  fingerprintOf,
  hostKeyAlgorithmsFor,
  keyTypeOf,
  knownHostsName,
} from './known-hosts.js';
import { uniq, type Resolved } from './options.js';

export interface AuthStep {
  label: string;
  method: AnyAuthMethod;
}

/** The authentication steps to try, in order, and why usable-looking credentials were left out. */
export interface Auth {
  steps: AuthStep[];
  notes: string[];
}

/** Gather the credentials: ssh-agent, then the key files, then the password. Throws on an unusable explicit key. */
export function buildAuth(r: Resolved, location: string): Auth {
  const steps: AuthStep[] = [];
  const notes: string[] = [];
  if (r.agent) {
    let ok = false;
    try {
      ok = process.platform === 'win32' || statSync(r.agent).isSocket();
    } catch {
      ok = false;
    }
    if (ok) steps.push({ label: 'ssh-agent', method: { type: 'agent', username: r.username, agent: r.agent } });
    else notes.push(`ssh-agent socket ${r.agent} is not usable`);
  }
  for (const file of r.keyFiles) {
    if (!existsSync(file)) {
      if (r.keysExplicit) {
        throw new StorageError(`SFTP private key file ${file} does not exist (for ${location})`, {
          kind: 'config',
          location,
        });
      }
      continue;
    }
    let raw: Buffer;
    try {
      // Like restic (OpenSSH refuses outright): a key that group or others can access is used, with a warning.
      const mode = process.platform === 'win32' ? 0 : statSync(file).mode & 0o777;
      if (mode & 0o077) {
        r.onWarning(
          `SFTP private key ${file} can be read or changed by other users (mode 0${mode.toString(8).padStart(3, '0')}): run \`chmod 600 ${file}\``,
        );
      }
      raw = readFileSync(file);
    } catch (err) {
      throw new StorageError(`cannot read SFTP private key file ${file}: ${(err as NodeJS.ErrnoException).code ?? errMessage(err)}`, {
        kind: 'config',
        location,
      });
    }
    const parsed = ssh2.utils.parseKey(raw, r.passphrase);
    if (parsed instanceof Error) {
      // parseKey's messages describe the format problem, never the key material.
      const why = /passphrase|encrypted|decrypt/i.test(parsed.message)
        ? r.passphrase
          ? 'wrong passphrase (KIWI_SFTP_KEY_PASSPHRASE)'
          : 'it is encrypted: set KIWI_SFTP_KEY_PASSPHRASE or use ssh-agent'
        : parsed.message;
      if (r.keysExplicit) {
        throw new StorageError(`cannot use SFTP private key ${file}: ${why}`, { kind: 'auth', location });
      }
      notes.push(`key ${file} skipped: ${why}`);
      continue;
    }
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key) continue;
    steps.push({ label: `key ${file}`, method: { type: 'publickey', username: r.username, key } });
  }
  if (r.password !== undefined && r.password !== '') {
    steps.push({ label: 'password', method: { type: 'password', username: r.username, password: r.password } });
  }
  return { steps, notes };
}

/** Returns a verifier and a getter for why it refused. */
export function hostVerifier(r: Resolved, location: string): { verify: (key: Buffer) => boolean; refused: () => HostKeyError | undefined } {
  let refusal: HostKeyError | undefined;
  const hostName = r.hostKeyAlias ?? knownHostsName(r.host, r.port);
  const verify = (key: Buffer): boolean => {
    const fp = fingerprintOf(key);
    const type = keyTypeOf(key);
    if (r.fingerprints) {
      if (r.fingerprints.includes(fp)) return true;
      refusal = new HostKeyError(
        `SFTP host key of ${r.host}:${r.port} does not match the configured fingerprint: the server offered ${type} ${fp}, expected ${r.fingerprints.join(' or ')}. ` +
          'Refusing to connect (possible man-in-the-middle attack, or the server was reinstalled).',
        'mismatch',
        fp,
        location,
      );
      return false;
    }
    const entries = findKnownHosts(r.knownHostsFiles, [hostName]);
    const verdict = checkKnownHosts(entries, key);
    if (verdict.ok) return true;
    const files = r.knownHostsFiles.filter((f) => existsSync(f)).join(', ') || r.knownHostsFiles[0];
    switch (verdict.reason) {
      case 'unknown':
        if (r.acceptNew) {
          try {
            appendKnownHost(r.acceptTarget, hostName, key);
          } catch (err) {
            refusal = new HostKeyError(
              `SFTP host key of ${r.host}:${r.port} (${type} ${fp}) could not be added to ${r.acceptTarget}: ${errMessage(err)}`,
              'unknown',
              fp,
              location,
            );
            return false;
          }
          return true;
        }
        refusal = new HostKeyError(
          `SFTP host ${hostName} is not in known_hosts (${files}); refusing to connect to an unverified server. ` +
            `It offered a key of type ${type} with fingerprint ${fp}. ` +
            `If that is the server's key (check it on the server: ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-|-sha2-nistp\d+$/g, '')}_key.pub), ` +
            `accept it once with \`ssh -p ${r.port} ${r.username}@${r.host}\`, or set the storage option hostKeyFingerprint: "${fp}", or acceptNewHostKey: true.`,
          'unknown',
          fp,
          location,
        );
        return false;
      case 'changed':
        refusal = new HostKeyError(
          `WARNING: THE SFTP HOST KEY OF ${hostName} HAS CHANGED (possible man-in-the-middle attack)! ` +
            `The server offered ${type} ${fp}, but ${verdict.detail} holds a different ${type} key. ` +
            'Refusing to connect. If the server really was reinstalled, verify the new fingerprint and remove the old line ' +
            `(ssh-keygen -R '${hostName}' -f ${verdict.detail?.slice(0, verdict.detail.lastIndexOf(':'))}).`,
          'changed',
          fp,
          location,
        );
        return false;
      case 'revoked':
        refusal = new HostKeyError(
          `SFTP host key ${type} ${fp} of ${hostName} is marked @revoked in known_hosts; refusing to connect.`,
          'revoked',
          fp,
          location,
        );
        return false;
      default:
        refusal = new HostKeyError(
          `SFTP host ${hostName} offered a key of type ${type} (${fp}), but known_hosts only has other key types for it (${verdict.detail}). ` +
            'Refusing to connect: verify the fingerprint and add it, or set hostKeyFingerprint.',
          'other-type',
          fp,
          location,
        );
        return false;
    }
  };
  return { verify, refused: () => refusal };
}

/** Host key algorithms to offer first: the key types known_hosts has for this host. */
export function preferredHostKeyAlgorithms(r: Resolved): string[] {
  if (r.fingerprints) return [];
  const name = r.hostKeyAlias ?? knownHostsName(r.host, r.port);
  const types = findKnownHosts(r.knownHostsFiles, [name])
    .filter((e) => e.marker === undefined)
    .map((e) => e.keyType);
  return uniq(types.flatMap(hostKeyAlgorithmsFor)).filter((a) =>
    /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|rsa-sha2-(256|512)|ssh-rsa)$/.test(a),
  );
}
