'use strict';
/**
 * @kiwi-backup/native-times: nanosecond-exact atime/mtime setting through
 * futimens(2) and utimensat(2, AT_SYMLINK_NOFOLLOW). Loading throws when the
 * addon was not built (Windows, or no compiler at install time): callers load
 * it inside a try/catch and fall back to Node's float-second utimes.
 */
const path = require('node:path');

const binding = require(path.join(__dirname, 'build', 'Release', 'native_times.node'));

function toPath(p) {
  return Buffer.isBuffer(p) ? p : Buffer.from(String(p), 'utf8');
}

module.exports = {
  futimensSync: (fd, atimeNs, mtimeNs) => binding.futimensSync(fd, atimeNs, mtimeNs),
  futimens: (fd, atimeNs, mtimeNs) => binding.futimens(fd, atimeNs, mtimeNs),
  lutimensSync: (p, atimeNs, mtimeNs) => binding.lutimensSync(toPath(p), atimeNs, mtimeNs),
  lutimens: (p, atimeNs, mtimeNs) => binding.lutimens(toPath(p), atimeNs, mtimeNs),
};
