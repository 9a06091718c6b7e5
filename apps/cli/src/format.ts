/** `ls -l` style mode string, e.g. `drwxr-xr-x`. */
export function formatMode(type: string, mode: number): string {
  const t = type === 'dir' ? 'd' : type === 'symlink' ? 'l' : type === 'fifo' ? 'p' : type === 'socket' ? 's' : type === 'chardev' ? 'c' : type === 'blockdev' ? 'b' : '-';
  const rwx = (bits: number, special: boolean, ch: string) =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-'}`;
  return (
    t +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}

/**
 * Make text from a repository or the file system safe to print on a terminal: control characters
 * (C0 including newline and tab, DEL, C1) and Unicode bidirectional overrides are shown as escapes
 * (`\n`, `\t`, `\x1b`, `\u202e`), so a crafted file name, host or tag cannot move the cursor,
 * recolour the terminal, fake an extra line or reverse the text. Every human printer uses it
 * (through {@link Output}); `--json` output keeps the exact value.
 */
export function escapeControl(text: string): string {
  // Fast path: nothing to escape (the usual case for every line `ls` prints).
  // eslint-disable-next-line no-control-regex
  if (!/[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/.test(text)) return text;
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (ch) => {
    switch (ch) {
      case '\n':
        return '\\n';
      case '\r':
        return '\\r';
      case '\t':
        return '\\t';
      default: {
        const code = ch.charCodeAt(0);
        return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
      }
    }
  });
}

/** Like {@link escapeControl}, but keeps line breaks: for multi-line messages Kiwi itself composed. */
export function escapeControlKeepLines(text: string): string {
  return text.split('\n').map(escapeControl).join('\n');
}

/** `1 file`, `2 files`; `plural(n, 'entry', 'entries')`. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Hide secrets in free text (an error message, a location) before it is printed: the password in a
 * `user:password@` part of any URL-like word, and every query string (`?secret=…`, a presigned
 * signature), which may carry credentials whatever its parameters are called.
 */
export function maskSecrets(text: string): string {
  return (
    text
      // scheme://user:password@host → scheme://user:***@host (also s3:https://…)
      .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s/@:"']*):[^\s/@"']*@/gi, '$1:***@')
      // sftp:user:password@host (scp-like form)
      .replace(/\b(sftp:[^\s/@:"']+):[^\s/@"']*@/gi, '$1:***@')
      // a query string of a URL-like word
      .replace(/([a-z][a-z0-9+.-]*:[^\s?"']*)\?[^\s"'#)]*/gi, '$1?***')
  );
}
