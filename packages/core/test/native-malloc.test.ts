import { afterEach, describe, expect, it } from 'vitest';
import { fixMallocThresholds, resetMallocThresholdsForTests } from '../src/native/malloc.js';
import { nativeFs } from '../src/native/native-fs.js';

afterEach(() => resetMallocThresholdsForTests());

describe('fixMallocThresholds', () => {
  it('leaves malloc alone when the user tuned it', () => {
    for (const env of [{ MALLOC_MMAP_THRESHOLD_: '65536' }, { MALLOC_TRIM_THRESHOLD_: '0' }, { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' }]) {
      resetMallocThresholdsForTests();
      expect(fixMallocThresholds(env)).toBe(false);
    }
  });

  it.runIf(process.platform === 'linux' && typeof nativeFs()?.mallocLimits === 'function')('pins them through the addon on glibc, once', () => {
    const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime !== undefined;
    expect(fixMallocThresholds({})).toBe(glibc);
    expect(fixMallocThresholds({ MALLOC_TRIM_THRESHOLD_: '0' })).toBe(glibc);
  });
});
