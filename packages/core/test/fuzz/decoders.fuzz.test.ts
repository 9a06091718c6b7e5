/**
 * Property-based fuzzing of every decoder of repository data (docs/security.md): random and
 * mutated inputs never make a decoder throw anything but its documented errors (IntegrityError,
 * DecompressError, or a plain Error with a message), never hang (each property runs under the
 * test timeout), and never produce more than the stated bound.
 *
 * CI: a fixed seed and a few hundred runs per decoder (a few seconds). Longer:
 *   KIWI_FUZZ_RUNS=100000 npx vitest run --project core test/fuzz
 * and KIWI_FUZZ_SEED=<n> for another seed (a failure prints the seed and path to replay).
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecompressError, compress, decompress } from '../../src/compression/zstd.js';
import { MasterKeys, createKeyFile, parseKeyFile } from '../../src/crypto/keys.js';
import { validateConfig } from '../../src/repository/decode.js';
import { IntegrityError } from '../../src/repository/errors.js';
import { FLAG_COMPRESSED, FLAG_TREE } from '../../src/repository/index-table.js';
import { MAX_SCRYPT_MEMORY, MAX_SCRYPT_WORK } from '../../src/repository/limits.js';
import { parseLockInfo } from '../../src/repository/lock.js';
import { decodePackHeader, encodeIndexBody, encodePackHeader, packHeaderLength, scanIndexBody, type PackEntry } from '../../src/repository/pack-format.js';
import { parseSnapshot, parseTree } from '../../src/repository/validate.js';
import { dirNode, fileNode, treeJson } from '../../src/testing/hostile.js';

const RUNS = Number(process.env.KIWI_FUZZ_RUNS ?? 300);
const SEED = Number(process.env.KIWI_FUZZ_SEED ?? 20261126);
const params = (scale = 1) => ({ numRuns: Math.max(1, Math.round(RUNS * scale)), seed: SEED });
const TIMEOUT = Math.max(30_000, RUNS * 50);

/** The error types a decoder may throw: its own, or a plain Error with a message (never a TypeError/RangeError from a bug). */
function expectDocumented(err: unknown): void {
  const ok =
    err instanceof IntegrityError ||
    err instanceof DecompressError ||
    (err instanceof Error && err.constructor === Error && err.message.length > 0);
  if (!ok) throw new Error(`undocumented error: ${String((err as Error)?.stack ?? err)}`);
}

function attempt<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    expectDocumented(err);
    return undefined;
  }
}

/** A byte array, or a valid sample with a few bytes flipped, inserted, cut or overwritten. */
function mutated(valid: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const mutation = fc.record({
    sample: fc.nat(valid.length - 1),
    edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 6 }),
  });
  return fc.oneof(
    fc.uint8Array({ maxLength: 600 }),
    mutation.map(({ sample, edits }) => {
      let b = Buffer.from(valid[sample]!);
      for (const [at, byte, kind] of edits) {
        const i = b.length === 0 ? 0 : at % b.length;
        if (kind === 0 && b.length > 0) b[i] = byte;
        else if (kind === 1) b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
        else if (kind === 2) b = b.subarray(0, i);
        else if (b.length >= 4) b.writeUInt32LE((byte * 0x01010101) >>> 0, Math.min(i, b.length - 4));
      }
      return new Uint8Array(b);
    }),
  );
}

const entries = (n: number, flags = 0): PackEntry[] => {
  let off = 0;
  return Array.from({ length: n }, (_, i) => {
    const e = { flags: i % 2 ? flags | FLAG_COMPRESSED : flags, id: randomBytes(32), offset: off, length: 100 + i, rawLength: i % 2 ? 500 : 72 + i };
    off += e.length;
    return e;
  });
};

describe('decoder fuzzing', { timeout: TIMEOUT }, () => {
  it('pack headers and trailers', () => {
    const valid = [encodePackHeader(entries(3)), encodePackHeader(entries(1, FLAG_TREE)), encodePackHeader([])];
    fc.assert(
      fc.property(mutated(valid), fc.option(fc.nat(1 << 20)), (plain, dataEnd) => {
        const out = attempt(() => decodePackHeader(plain, dataEnd ?? undefined));
        if (out) {
          expect(out.length).toBe((plain.byteLength - 1) / 45);
          let end = 0;
          for (const e of out) {
            expect(e.offset).toBe(end);
            end = e.offset + e.length;
          }
        }
      }),
      params(),
    );
    fc.assert(
      fc.property(fc.nat(), fc.uint8Array({ minLength: 4, maxLength: 4 }), (size, last) => {
        const h = attempt(() => packHeaderLength(size, last));
        if (h !== undefined) expect(h).toBeLessThanOrEqual(size - 4);
      }),
      params(),
    );
  });

  it('index file bodies', () => {
    const valid = [
      encodeIndexBody([{ id: 'a'.repeat(64), entries: entries(4) }, { id: 'b'.repeat(64), entries: entries(2, FLAG_TREE) }]),
      encodeIndexBody([], ['c'.repeat(64)]),
    ];
    fc.assert(
      fc.property(mutated(valid), (body) => {
        let blobs = 0;
        const r = attempt(() => scanIndexBody(Buffer.from(body), () => undefined, () => void blobs++));
        if (r) {
          expect(r.blobs).toBe(blobs);
          expect(blobs * 45).toBeLessThanOrEqual(body.byteLength);
        }
      }),
      params(),
    );
  });

  const BLOB = 'cd'.repeat(32);
  const treeSamples = [
    treeJson([fileNode('a', { size: 3, content: [BLOB] }), dirNode('d', BLOB), { ...fileNode('l'), type: 'symlink', content: undefined, linkTarget: 't' }]),
    treeJson([]),
  ];
  /** What every consumer does with a node: none of it may throw on a validated one. */
  function consume(n: ReturnType<typeof parseTree>['nodes'][number]): void {
    BigInt(n.mtimeNs);
    BigInt(n.ctimeNs);
    BigInt(n.inode);
    Buffer.from(n.nameRaw ?? n.name, n.nameRaw ? 'base64' : 'utf8');
    if (n.type === 'file') expect(n.content!.every((c) => c.length === 64)).toBe(true);
    if (n.type === 'dir') expect(n.subtree).toHaveLength(64);
    expect(n.name).not.toMatch(/^\.{0,2}$/);
  }

  it('trees: random bytes and mutated trees', () => {
    fc.assert(
      fc.property(mutated(treeSamples), (bytes) => {
        const t = attempt(() => parseTree(bytes, BLOB));
        if (t) t.nodes.forEach(consume);
      }),
      params(),
    );
  });

  it('trees: well-formed JSON with arbitrary node values', () => {
    const nodeish = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.record({
        name: fc.oneof(fc.string(), fc.constantFrom('', '.', '..', 'a/b', 'x\0y'), fc.jsonValue({ maxDepth: 1 })),
        type: fc.oneof(fc.constantFrom('file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev'), fc.string()),
        mode: fc.oneof(fc.integer(), fc.double(), fc.string()),
        uid: fc.oneof(fc.integer({ min: -10, max: 2 ** 33 }), fc.constant(2 ** 32 - 1)),
        gid: fc.integer({ min: -10, max: 2 ** 33 }),
        mtimeNs: fc.oneof(fc.bigInt().map(String), fc.string(), fc.integer()),
        ctimeNs: fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }).map(String),
        inode: fc.bigInt({ min: -5n, max: 2n ** 65n }).map(String),
        dev: fc.constant('1'),
        size: fc.oneof(fc.integer({ min: -5, max: 100 }), fc.double()),
        content: fc.oneof(fc.array(fc.oneof(fc.constant(BLOB), fc.string())), fc.jsonValue({ maxDepth: 1 })),
        subtree: fc.oneof(fc.constant(BLOB), fc.string()),
        linkTarget: fc.string(),
        linkTargetRaw: fc.oneof(fc.base64String(), fc.string()),
        nameRaw: fc.oneof(fc.base64String(), fc.string()),
        metadata: fc.jsonValue({ maxDepth: 2 }),
      }, { requiredKeys: ['name', 'type'] }),
    );
    fc.assert(
      fc.property(fc.array(nodeish, { maxLength: 12 }), (nodes) => {
        const t = attempt(() => parseTree(Buffer.from(JSON.stringify({ nodes })), BLOB));
        expect(t).toBeDefined(); // a nodes array is always a tree; bad entries go to `invalid`
        expect(t!.nodes.length + (t!.invalidCount ?? 0)).toBe(nodes.length);
        t!.nodes.forEach(consume);
      }),
      params(),
    );
  });

  it('snapshots', () => {
    const valid = JSON.stringify({ time: '2026-01-01T00:00:00Z', hostname: 'h', username: 'u', paths: ['/a'], tags: ['t'], tree: BLOB, programVersion: 'k' });
    const samples = [Buffer.from(valid)];
    fc.assert(
      fc.property(fc.oneof(mutated(samples), fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v)))), (body) => {
        const s = attempt(() => parseSnapshot(body, 'snapshots/x'));
        if (s) {
          expect(Number.isFinite(Date.parse(s.time))).toBe(true);
          expect(s.tags.every((t) => typeof t === 'string')).toBe(true);
          expect(s.tree).toHaveLength(64);
        }
      }),
      params(),
    );
  });

  it('key files, lock files, config', async () => {
    const { bytes } = await createKeyFile(MasterKeys.generate(), 'pw', { kdf: { N: 1024, r: 8, p: 1 } });
    const key = JSON.parse(bytes.toString()) as Record<string, unknown>;
    const keyish = fc.record({
      version: fc.oneof(fc.constant(1), fc.jsonValue({ maxDepth: 0 })),
      kdf: fc.oneof(fc.constant('scrypt'), fc.string()),
      N: fc.oneof(fc.constantFrom(2 ** 10, 2 ** 20, 2 ** 31, 2 ** 53), fc.integer(), fc.double()),
      r: fc.oneof(fc.integer({ min: -1, max: 1 << 20 }), fc.constant(8)),
      p: fc.oneof(fc.integer({ min: -1, max: 1 << 20 }), fc.constant(1)),
      salt: fc.oneof(fc.constant(key.salt), fc.base64String(), fc.string()),
      data: fc.oneof(fc.constant(key.data), fc.base64String()),
      hostname: fc.oneof(fc.string(), fc.jsonValue({ maxDepth: 0 })),
    }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.oneof(keyish.map((k) => Buffer.from(JSON.stringify({ ...key, ...k }))), mutated([bytes])), (b) => {
        const f = attempt(() => parseKeyFile(b, 'keys/x'));
        if (f) {
          expect(128 * f.N * f.r).toBeLessThanOrEqual(MAX_SCRYPT_MEMORY);
          expect(f.N * f.r * f.p).toBeLessThanOrEqual(MAX_SCRYPT_WORK);
        }
      }),
      params(),
    );
    const lock = Buffer.from(JSON.stringify({ time: new Date().toISOString(), hostname: 'h', pid: 5, username: 'u', exclusive: true }));
    fc.assert(
      fc.property(fc.oneof(mutated([lock]), fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v)))), (b) => {
        const info = attempt(() => parseLockInfo(b, 'locks/x'));
        if (info) expect(Number.isInteger(info.pid) && info.pid > 0).toBe(true);
      }),
      params(),
    );
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (v) => {
        attempt(() => validateConfig(v));
      }),
      params(0.5),
    );
  });

  it('zstd frames never decompress past their bound', async () => {
    const samples = await Promise.all([compress(Buffer.alloc(5000, 'abc')), compress(randomBytes(300)), compress(Buffer.from('x'.repeat(70_000)))]);
    await fc.assert(
      fc.asyncProperty(mutated(samples), fc.integer({ min: 0, max: 100_000 }), fc.boolean(), async (frame, bound, exact) => {
        try {
          const out = await decompress(frame, exact ? { exact: bound } : { max: bound });
          if (exact) expect(out.byteLength).toBe(bound);
          else expect(out.byteLength).toBeLessThanOrEqual(bound);
        } catch (err) {
          if (!(err instanceof DecompressError)) throw new Error(`undocumented error: ${String((err as Error)?.stack ?? err)}`);
        }
      }),
      params(0.5),
    );
  });
});
