/** The reference the native crypto is checked against: AES-256-GCM messages by Node's crypto. */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const NONCE = 12;
export const TAG = 16;

/** `nonce ‖ AES-256-GCM(key, plain) ‖ tag`, by Node's crypto. */
export function nodeSeal(key: Uint8Array, plain: Uint8Array, nonce: Uint8Array = randomBytes(NONCE)): Buffer {
  const c = createCipheriv('aes-256-gcm', key, nonce);
  return Buffer.concat([nonce, c.update(plain), c.final(), c.getAuthTag()]);
}

/** Node's verdict on a message: its plaintext, or undefined when it does not authenticate. */
export function nodeOpen(key: Uint8Array, msg: Uint8Array): Buffer | undefined {
  const d = createDecipheriv('aes-256-gcm', key, msg.subarray(0, NONCE));
  d.setAuthTag(msg.subarray(msg.length - TAG));
  const out = d.update(msg.subarray(NONCE, msg.length - TAG));
  try {
    return Buffer.concat([out, d.final()]);
  } catch {
    return undefined;
  }
}
