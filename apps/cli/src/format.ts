import { maskUrlPassword } from '@kiwi-backup/core';

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
 * signature), which may carry credentials whatever its parameters are called. A password runs to the
 * LAST "@" of its word, since it may hold "@", "/" or ":" itself (`sftp://backup:Tr0ub@dor/x@nas/srv` →
 * `sftp://backup:***@nas/srv`); a word's "@" after a ":" in its path is masked too (a message loses a
 * little, a password never shows). A password with a space or a quote ends the word early: where the
 * location as written is known, {@link maskMessage} replaces it whole.
 */
export function maskSecrets(text: string): string {
  return (
    text
      // scheme://user:password@host → scheme://user:***@host (also s3:https://…)
      .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s/@:"']*):[^\s"']*@/gi, '$1:***@')
      // sftp:user:password@host (scp-like form; the user may hold an "@")
      .replace(/\b(sftp:[^\s/:"']+):[^\s"']*@/gi, '$1:***@')
      // a query string of a URL-like word
      .replace(/([a-z][a-z0-9+.-]*:[^\s?"']*)\?[^\s"'#)]*/gi, '$1?***')
  );
}

/**
 * A repository location as it may be printed: the password of its user info (from the first ":" to the
 * last "@", whatever it holds, spaces and quotes included) and its query string become `***`. A location
 * without a scheme (a local path) is left as it is.
 */
export function maskUrl(location: string): string {
  const masked = maskUrlPassword(location);
  if (!/^[a-z][a-z0-9+.-]+:/i.test(masked)) return masked;
  const query = masked.indexOf('?');
  return query < 0 ? masked : `${masked.slice(0, query)}?***`;
}

/**
 * A message safe to print: the repository location as the user wrote it (`rawRepo`) replaced wherever it
 * occurs by its printable form (`repo`, default {@link maskUrl} of it), then {@link maskSecrets}. Only a
 * location with something to hide is replaced: a relative local path is a plain word that other parts of
 * the message may contain.
 */
export function maskMessage(message: string, rawRepo?: string, repo: string | undefined = rawRepo === undefined ? undefined : maskUrl(rawRepo)): string {
  if (rawRepo && repo !== undefined && rawRepo !== repo && maskUrl(rawRepo) !== rawRepo) message = message.split(rawRepo).join(repo);
  return maskSecrets(message);
}
