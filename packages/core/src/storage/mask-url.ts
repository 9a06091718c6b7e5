/**
 * A repository URL's password hidden, for messages: `sftp://user:***@host/path`, `sftp:user:***@host:path`,
 * `s3:https://key:***@host/bucket`. The password runs from the first ":" of the user info to the LAST "@":
 * it may hold "@", "/" or ":" itself (`sftp://backup:Tr0ub@dor/x@nas/srv` is user `backup` at `nas`), and
 * spaces or quotes. A path holding an "@" after a ":" loses a little too; a password never shows. A
 * location without a scheme of two letters or more (a local path, `C:\…`) is left as it is. The query
 * string is not touched (see the CLI's `maskUrl`).
 */
export function maskUrlPassword(location: string): string {
  const prefix = /^[a-z][a-z0-9+.-]+:(?:[a-z][a-z0-9+.-]*:\/\/|\/\/)?/i.exec(location)?.[0];
  if (prefix === undefined) return location;
  const body = location.slice(prefix.length);
  const at = body.lastIndexOf('@');
  const colon = body.indexOf(':');
  if (at < 0 || colon < 0 || colon > at) return location;
  return `${prefix}${body.slice(0, colon)}:***@${body.slice(at + 1)}`;
}
