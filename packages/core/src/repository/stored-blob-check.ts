/**
 * Checking a blob's stored bytes (nonce ‖ AES-256-GCM ciphertext ‖ tag) without holding its
 * plaintext: for prune's repacking, which copies blobs into new packs as they are stored and only
 * needs to know that they are sound. The blob is decrypted into one reused buffer (which grows to the
 * largest blob checked; through the addon's synchronous call when it is there, which allocates
 * nothing), and a compressed blob's zstd frame is decompressed as a stream through one small reused
 * buffer into HMAC-SHA-256: nothing is allocated per blob, where opening it the ordinary way costs a
 * decompressed output the size of the blob (and, over a repository, hundreds of MiB of garbage
 * buffers waiting for the collector).
 *
 * It accepts exactly the blobs {@link BlobReader.open} accepts: authentic under the key, a single
 * zstd frame (no dictionary, nothing after it) of exactly the indexed length when compressed, that
 * length when not, and the HMAC id the index names; the tag is checked first.
 *
 * A frame whose window is wider than 8 MiB and than twice its blob (no writer Kiwi has makes one) is
 * not streamed: the stream's window buffer would be the frame's to choose. {@link check} then answers
 * `'whole'` and the caller opens the blob the ordinary way, which decompresses into an output bounded
 * by the indexed length.
 */
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { OVERHEAD, decrypt } from '../crypto/aead.js';
import type { MasterKeys } from '../crypto/keys.js';
import { hmacSha256 } from '../crypto/mac.js';
import { parseFrameHeader } from '../compression/zstd-frame.js';

/** The decryption target's smallest size (it grows to the largest blob checked, in powers of two). */
const MIN_PLAIN = 1024 * 1024;
/** The largest window a frame is streamed with (a wider one is opened whole, into an output bounded by its length). */
const MAX_STREAM_WINDOW = 8 * 1024 * 1024;
/** The decompressed stream's buffer. */
const OUT_SIZE = 128 * 1024;

interface StreamingDCtx {
  decompressStream(dst: Uint8Array, src: Uint8Array): [ret: number, produced: number, consumed: number];
  reset(directive: number): void;
}
interface ZstdStreamBinding {
  DCtx: new () => StreamingDCtx;
  ResetDirective: { sessionOnly: number };
}

const require = createRequire(import.meta.url);
let binding: ZstdStreamBinding | undefined;

/** A stored blob whose plaintext is not what the index says (length, zstd frame or id); the message says what. */
export class StoredBlobError extends Error {
  constructor(
    message: string,
    readonly kind: 'zstd' | 'length' | 'id',
  ) {
    super(message);
    this.name = 'StoredBlobError';
  }
}

/** What {@link StoredBlobChecker.check} is told about the blob: what the index records. */
export interface StoredBlobFacts {
  compressed: boolean;
  rawLength: number;
  /** The blob's id, 32 raw bytes. */
  id: Uint8Array;
}

export class StoredBlobChecker {
  private dctx: StreamingDCtx | undefined;
  private out: Buffer | undefined;
  /** The decrypted (still compressed) blob, reused. */
  private plain: Buffer | undefined;

  constructor(private readonly keys: MasterKeys) {}

  /**
   * `'ok'` when `stored` is the sound stored form of the blob `facts` describe; `'whole'` when its
   * frame is not one to stream (open it whole instead). Throws {@link AuthenticationError} when the
   * bytes are not authentic, {@link StoredBlobError} when the plaintext is not what the index says.
   */
  check(stored: Uint8Array, facts: StoredBlobFacts): 'ok' | 'whole' {
    const length = stored.byteLength - OVERHEAD;
    if (!this.plain || this.plain.byteLength < length) this.plain = Buffer.allocUnsafe(Math.max(MIN_PLAIN, 2 ** Math.ceil(Math.log2(Math.max(1, length)))));
    // Throws AuthenticationError for bytes that are not authentic (before anything else is looked at).
    const plain = decrypt(this.keys.encKey, stored, this.plain.subarray(0, Math.max(0, length)));
    let actual: Buffer;
    if (!facts.compressed) {
      if (plain.byteLength !== facts.rawLength) throw new StoredBlobError(`${plain.byteLength} bytes, index says ${facts.rawLength}`, 'length');
      actual = hmacSha256(this.keys.idKey, plain);
    } else {
      const hmac = createHmac('sha256', this.keys.idKey);
      const frame = this.frameSink(facts.rawLength, hmac);
      try {
        if (frame.feed(plain) === 'whole') return 'whole';
      } catch (err) {
        throw err instanceof StoredBlobError ? err : new StoredBlobError(`zstd decompression failed: ${(err as Error).message}`, 'zstd');
      }
      if (!frame.done()) throw new StoredBlobError('zstd decompression failed: the frame is truncated', 'zstd');
      if (frame.produced() !== facts.rawLength) throw new StoredBlobError(`zstd decompression produced ${frame.produced()} bytes, expected ${facts.rawLength}`, 'length');
      actual = hmac.digest();
    }
    if (!actual.equals(facts.id)) throw new StoredBlobError(`content does not match its id (got ${actual.toString('hex')})`, 'id');
    return 'ok';
  }

  /** A sink for a zstd frame's decrypted bytes: decompresses them as they come, into the HMAC. */
  private frameSink(rawLength: number, hmac: ReturnType<typeof createHmac>) {
    const b = (binding ??= require('zstd-napi/binding') as ZstdStreamBinding);
    const dctx = (this.dctx ??= new b.DCtx());
    const out = (this.out ??= Buffer.allocUnsafe(OUT_SIZE));
    dctx.reset(b.ResetDirective.sessionOnly);
    let started = false;
    let done = false;
    let produced = 0;
    return {
      started: () => started,
      done: () => done,
      produced: () => produced,
      feed(part: Buffer): 'more' | 'whole' {
        if (!started) {
          const header = parseFrameHeader(part); // throws on a part too short or not a frame: a ZstdFrameError
          if (header.dictionaryId !== 0) throw new StoredBlobError('zstd decompression failed: the frame needs a dictionary', 'zstd');
          if (header.contentSize !== undefined && header.contentSize !== rawLength) {
            throw new StoredBlobError(`zstd frame declares ${header.contentSize} bytes of content, expected ${rawLength}`, 'zstd');
          }
          // Kiwi's writers use windows of at most 2 MiB (level 3; less for a blob whose size they
          // knew): the stream's window buffer, allocated once and reused, stays that size.
          if (header.windowSize > Math.max(2 * rawLength, MAX_STREAM_WINDOW)) return 'whole';
          started = true;
        }
        let pos = 0;
        let full = false;
        while (pos < part.byteLength || full) {
          if (done) throw new StoredBlobError('zstd decompression failed: data after the zstd frame', 'zstd');
          const [ret, n, used] = dctx.decompressStream(out, part.subarray(pos));
          pos += used;
          full = n === out.byteLength;
          if (n > 0) {
            produced += n;
            if (produced > rawLength) throw new StoredBlobError(`zstd frame decompresses to more than the expected ${rawLength} bytes`, 'zstd');
            hmac.update(out.subarray(0, n));
          }
          if (ret === 0) {
            done = true; // decoded and flushed
            full = false;
          } else if (n === 0 && used === 0) break; // needs more input
        }
        return 'more';
      },
    };
  }
}
