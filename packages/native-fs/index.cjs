'use strict';
/**
 * @kiwi-backup/native-fs: what Node's `fs` cannot do, for Kiwi's backup and
 * restore: nanosecond-exact times (futimens, utimensat without following a
 * symlink), extended attributes (POSIX ACLs are stored in them), mknod (FIFOs,
 * devices, sockets) and SEEK_DATA/SEEK_HOLE; blob crypto with the process's
 * OpenSSL, when it can be found (`aeadAvailable`): AES-256-GCM decryption and
 * HMAC-SHA-256 on the threadpool, and AES-256-GCM both ways and HMAC-SHA-256 on
 * the calling thread without an allocation per message (the `…Sync` calls); and
 * a backup walk's directories read in one threadpool job each (`scanDirs`,
 * Linux). Loading throws when the addon
 * was not built (Windows, or no compiler at install time): callers load it
 * inside a try/catch and fall back (or report what they could not do).
 */
const path = require('node:path');

const binding = require(path.join(__dirname, 'build', 'Release', 'native_fs.node'));

function toPath(p) {
  return Buffer.isBuffer(p) ? p : Buffer.from(String(p), 'utf8');
}

module.exports = {
  futimensSync: (fd, atimeNs, mtimeNs) => binding.futimensSync(fd, atimeNs, mtimeNs),
  futimens: (fd, atimeNs, mtimeNs) => binding.futimens(fd, atimeNs, mtimeNs),
  lutimensSync: (p, atimeNs, mtimeNs) => binding.lutimensSync(toPath(p), atimeNs, mtimeNs),
  lutimens: (p, atimeNs, mtimeNs) => binding.lutimens(toPath(p), atimeNs, mtimeNs),
  xattrSupported: binding.xattrSupported,
  lgetxattrsSync: (p, maxValue = 65536, maxCount = 1024, maxListBytes = 1024 * 1024) =>
    binding.lgetxattrsSync(toPath(p), maxValue, maxCount, maxListBytes),
  llistxattrSync: (p) => binding.llistxattrSync(toPath(p)),
  lsetxattrSync: (p, name, value) => binding.lsetxattrSync(toPath(p), toPath(name), value),
  fsetxattrSync: (fd, name, value) => binding.fsetxattrSync(fd, toPath(name), value),
  lremovexattrSync: (p, name) => binding.lremovexattrSync(toPath(p), toPath(name)),
  mknodSync: (p, mode, dev) => binding.mknodSync(toPath(p), mode, dev),
  seekDataSync: (fd, offset) => binding.seekDataSync(fd, offset),
  seekHoleSync: (fd, offset) => binding.seekHoleSync(fd, offset),
  // Newer calls, absent from an addon built by an older version (callers then take their JS path).
  ...(typeof binding.writeFile === 'function'
    ? {
        writeFile: (tmp, final, data, mode, chmodMode, uid, gid, mtimeNs) =>
          binding.writeFile(toPath(tmp), toPath(final), data ?? null, mode, chmodMode, uid, gid, mtimeNs),
      }
    : {}),
  ...(typeof binding.writeFiles === 'function' ? { writeFiles: (files) => binding.writeFiles(files) } : {}),
  ...(typeof binding.exitNow === 'function' ? { exitNow: (code) => binding.exitNow(code) } : {}),
  ...(typeof binding.mallocLimits === 'function' ? { mallocLimits: (mmapThreshold, trimThreshold) => binding.mallocLimits(mmapThreshold, trimThreshold) } : {}),
  ...(typeof binding.writeFilesAt === 'function' ? { writeFilesAt: (dirFd, files) => binding.writeFilesAt(dirFd, files) } : {}),
  ...(typeof binding.scanDirs === 'function'
    ? {
        scanDirs: (paths, flags, maxValue, maxCount, maxListBytes) => binding.scanDirs(paths.map(toPath), flags, maxValue, maxCount, maxListBytes),
        scanDirSync: (p, flags, maxValue, maxCount, maxListBytes) => binding.scanDirSync(toPath(p), flags, maxValue, maxCount, maxListBytes),
        scanXattrsAt: binding.scanXattrsAt === true,
      }
    : {}),
  // Present only when the addon found a working OpenSSL in the process (see src/aead.c).
  aeadAvailable: binding.aeadAvailable === true && typeof binding.gcmOpen === 'function' && typeof binding.hmacSha256 === 'function',
  ...(binding.aeadAvailable === true && typeof binding.gcmOpen === 'function' && typeof binding.hmacSha256 === 'function'
    ? {
        gcmOpen: (key, src, dst) => binding.gcmOpen(key, src, dst),
        hmacSha256: (key, data, out) => binding.hmacSha256(key, data, out),
        // The synchronous calls (this thread, no allocation); absent from an addon built before them.
        ...(typeof binding.gcmSealSync === 'function' && typeof binding.gcmOpenSync === 'function' && typeof binding.hmacSha256Sync === 'function'
          ? { gcmSealSync: binding.gcmSealSync, gcmOpenSync: binding.gcmOpenSync, hmacSha256Sync: binding.hmacSha256Sync }
          : {}),
      }
    : {
        aeadUnavailableReason:
          typeof binding.aeadUnavailableReason === 'string' ? binding.aeadUnavailableReason : 'the addon was built before gcmOpen/hmacSha256',
      }),
};
