import { constants as bufferConstants } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { StorageError } from '../../src/storage/errors.js';
import { allocLoadBuffer } from '../../src/storage/types.js';

describe('allocLoadBuffer', () => {
  it('gives a buffer of the length asked for', () => {
    expect(allocLoadBuffer(4096, 'data/ab/x').byteLength).toBe(4096);
    expect(allocLoadBuffer(0, 'config').byteLength).toBe(0);
  });

  it('refuses more than a Buffer can hold, or a length that is no size, with a StorageError naming the file', () => {
    for (const length of [bufferConstants.MAX_LENGTH + 1, 2 ** 53, -1, 1.5, Number.NaN]) {
      let err: unknown;
      try {
        allocLoadBuffer(length, 'sftp://host/repo/index/ab');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).location).toBe('sftp://host/repo/index/ab');
      expect((err as Error).message).toMatch(/^load sftp:\/\/host\/repo\/index\/ab: .* bytes are more than can be loaded at once/);
    }
  });
});
