/** Where an S3 repository lives, parsed from its URL. */
export interface S3Target {
  /** A custom endpoint (`https://host:port`), or undefined for AWS. */
  endpoint: string | undefined;
  bucket: string;
  /** Key prefix without leading/trailing slashes ('' = bucket root). */
  prefix: string;
}

/**
 * Parse an S3 repository URL:
 * - `s3:bucket/prefix` or `s3://bucket/prefix` (AWS)
 * - `s3:https://host:port/bucket/prefix` (custom endpoint; `http:` too)
 *
 * User info in an endpoint URL (`https://user:pass@host`) is rejected: credentials
 * belong in options or the environment, never in the repository URL. A URL that does not
 * parse and may hold credentials (a ":" before its last "@", see {@link redactUrl}) is
 * refused for that, whatever else is wrong with it, so that no message quotes a part of it
 * (a bucket name cut out of `s3:https://AK:12/SECRET@host/b`).
 */
export function parseS3Url(url: string): S3Target {
  try {
    return parseUrl(url);
  } catch (err) {
    if (url.startsWith('s3:') && splitUserInfo(url).info?.includes(':')) throw credentialsError(url);
    throw err;
  }
}

function credentialsError(url: string): TypeError {
  return new TypeError(`S3 repository URL ${JSON.stringify(redactUrl(url))} contains credentials: pass them as options or environment variables instead`);
}

function parseUrl(url: string): S3Target {
  if (!url.startsWith('s3:')) throw new TypeError(`not an S3 repository URL: ${JSON.stringify(redactUrl(url))}`);
  let rest = url.slice(3);
  if (/^https?:\/\//i.test(rest)) {
    let parsed: URL;
    try {
      parsed = new URL(rest);
    } catch {
      throw new TypeError(`invalid S3 endpoint URL in ${JSON.stringify(redactUrl(url))}`);
    }
    if (parsed.username || parsed.password) throw credentialsError(url);
    if (parsed.search || parsed.hash) throw new TypeError(`S3 repository URL ${JSON.stringify(redactUrl(url))} must not have a query or fragment`);
    const { bucket, prefix } = splitBucket(decodeURIComponent(parsed.pathname), url);
    return { endpoint: `${parsed.protocol}//${parsed.host}`, bucket, prefix };
  }
  if (rest.startsWith('//')) rest = rest.slice(2);
  const { bucket, prefix } = splitBucket(rest, url);
  return { endpoint: undefined, bucket, prefix };
}

function splitBucket(path: string, url: string): { bucket: string; prefix: string } {
  const trimmed = path.replace(/^\/+/, '');
  const slash = trimmed.indexOf('/');
  const bucket = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const prefix = normalizePrefix(slash < 0 ? '' : trimmed.slice(slash + 1));
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/.test(bucket)) {
    // The bucket is quoted only when nothing of the URL had to be hidden (`s3:bucket?secret=…`).
    const quoted = redactUrl(url) === url ? ` ${JSON.stringify(bucket)}` : '';
    throw new TypeError(`S3 repository URL ${JSON.stringify(redactUrl(url))}: invalid or missing bucket name${quoted}`);
  }
  return { bucket, prefix };
}

/** Strip leading/trailing slashes and collapse repeated ones. */
export function normalizePrefix(prefix: string): string {
  return prefix.split('/').filter((p) => p !== '').join('/');
}

/**
 * Remove anything that may hold a secret from a URL before printing it: user info, and the query
 * string and fragment (a presigned signature or a `?secret=` would otherwise be echoed). The user
 * info runs to the LAST "@": a secret key may hold "@", "/", "?" or "#" itself
 * (`s3:https://AK:SE@CRET@host/b` → `s3:https://***@host/b`).
 */
export function redactUrl(url: string): string {
  const { prefix, info, rest } = splitUserInfo(url);
  return (info === undefined ? url : `${prefix}***@${rest}`).replace(/[?#].*$/s, (m) => `${m[0]}***`);
}

/** An S3 URL's `s3:`, `s3://` or `s3:https://`, the user info before its last "@" (if any), and the rest. */
function splitUserInfo(url: string): { prefix: string; info?: string; rest: string } {
  const prefix = /^s3:(?:https?:\/\/|\/\/)?/i.exec(url)?.[0] ?? '';
  const body = url.slice(prefix.length);
  const at = body.lastIndexOf('@');
  return at < 0 ? { prefix, rest: body } : { prefix, info: body.slice(0, at), rest: body.slice(at + 1) };
}

/** The printable location of a target: `s3:https://host/bucket/prefix` or `s3:bucket/prefix`. */
export function formatLocation(target: S3Target): string {
  const path = target.prefix ? `${target.bucket}/${target.prefix}` : target.bucket;
  return target.endpoint ? `s3:${target.endpoint}/${path}` : `s3:${path}`;
}
