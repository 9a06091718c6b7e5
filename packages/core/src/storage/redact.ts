/**
 * Remove secrets from a repository URL before it is printed or logged: the
 * password of a `user:password@` part (the user is kept) and the values of
 * query parameters that look like credentials (`secret`, `password`, `token`,
 * `key`, `signature`, `credential`).
 */
export function redactUrl(url: string): string {
  let out = url;
  // Where a userinfo could start: after `scheme:...//` (`s3:https://`), else after `scheme:` (`sftp:`).
  const m = /^[a-z][a-z0-9+.-]*:(?:[a-z][a-z0-9+.-]*:)*\/\//i.exec(out) ?? /^[a-z][a-z0-9+.-]+:/i.exec(out);
  if (m) {
    const start = m[0].length;
    const firstAt = out.indexOf('@', start);
    if (firstAt >= 0) {
      // A password may hold '@' but not a raw '/': the userinfo ends at the last '@' before the next '/'.
      const slash = out.indexOf('/', firstAt);
      const at = out.lastIndexOf('@', slash < 0 ? out.length : slash);
      const userinfo = out.slice(start, at);
      const colon = userinfo.indexOf(':');
      const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
      if (colon >= 0 && !user.includes('/')) out = `${out.slice(0, start)}${user}${out.slice(at)}`;
    }
  }
  return out.replace(
    /([?&;][^=&;#]*(?:secret|password|passwd|pass|token|key|signature|credential)[^=&;#]*=)([^&;#]*)/gi,
    '$1***',
  );
}
