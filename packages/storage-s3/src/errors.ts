import { StorageError, isTransientError, type StorageErrorKind } from '@kiwi-backup/core';

interface SdkErrorLike {
  name?: unknown;
  code?: unknown;
  Code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: number };
}

function fields(err: unknown): { name: string; status: number | undefined; code: string } {
  if (err === null || typeof err !== 'object') return { name: '', status: undefined, code: '' };
  const e = err as SdkErrorLike;
  return {
    name: typeof e.name === 'string' ? e.name : '',
    status: e.$metadata?.httpStatusCode,
    code: typeof e.Code === 'string' ? e.Code : typeof e.code === 'string' ? e.code : '',
  };
}

const NOT_FOUND_NAMES = new Set(['NoSuchKey', 'NotFound', 'NoSuchUpload']);
const AUTH_NAMES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'Forbidden',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'InvalidClientTokenId',
  'CredentialsProviderError',
  'AuthorizationHeaderMalformed',
  'AllAccessDisabled',
]);

/** True if an SDK error means "no such object" (not "no such bucket"). */
export function isS3NotFound(err: unknown): boolean {
  if (err instanceof StorageError) return err.kind === 'not-found';
  const { name, status, code } = fields(err);
  if (name === 'NoSuchBucket' || code === 'NoSuchBucket') return false;
  return NOT_FOUND_NAMES.has(name) || NOT_FOUND_NAMES.has(code) || status === 404;
}

/** True if an SDK error means "no such bucket". */
export function isNoSuchBucket(err: unknown): boolean {
  const { name, code } = fields(err);
  return name === 'NoSuchBucket' || code === 'NoSuchBucket';
}

/** Classify an SDK (or network) error into a {@link StorageErrorKind}. */
export function classifyS3Error(err: unknown): StorageErrorKind {
  if (err instanceof StorageError) return err.kind;
  const { name, status, code } = fields(err);
  if (name === 'NoSuchBucket' || code === 'NoSuchBucket') return 'config';
  if (isS3NotFound(err)) return 'not-found';
  if (AUTH_NAMES.has(name) || AUTH_NAMES.has(code) || status === 401 || status === 403) return 'auth';
  if (isTransientError(err)) return 'transient';
  // The SDK reports some low-level network failures without a code.
  const message = err instanceof Error ? err.message : '';
  if (/socket hang up|ECONNRESET|EPIPE|ETIMEDOUT|ECONNREFUSED|aborted|premature close|timed? ?out/i.test(message)) return 'transient';
  if (/region is missing/i.test(message)) return 'config';
  return 'other';
}

/** A short description of an SDK error: its name/code, HTTP status and message (no credentials in any of them). */
export function describeS3Error(err: unknown): string {
  const { name, status, code } = fields(err);
  const message = (err instanceof Error ? err.message : String(err)).trim().replace(/\.+$/, '');
  const generic = new Set(['', 'Error', 'Unknown', 'UnknownError', 'TimeoutError']);
  const label = code || (generic.has(name) ? '' : name);
  const parts = [label, status !== undefined ? `HTTP ${status}` : ''].filter(Boolean).join(', ');
  const text = message && message !== label && !generic.has(message) ? message : '';
  return [parts && `(${parts})`, text].filter(Boolean).join(' ') || 'unknown error';
}

export interface S3ErrorContext {
  /** The operation, e.g. `save data/ab/abcd`. */
  op: string;
  /** The printable storage location (no credentials). */
  location: string;
  endpoint: string;
  bucket: string;
  /** Full `location/key` of the file, if the operation was on one file. */
  where?: string;
}

/**
 * Wrap an SDK error into a {@link StorageError} whose message says what failed,
 * where, and (for auth and config errors) what to check. Never includes credentials.
 */
export function toStorageError(err: unknown, ctx: S3ErrorContext): StorageError {
  if (err instanceof StorageError) return err;
  const kind = classifyS3Error(err);
  const detail = describeS3Error(err);
  const where = ctx.where ?? ctx.location;
  let message: string;
  switch (kind) {
    case 'auth':
      message =
        `S3 access denied for bucket "${ctx.bucket}" at ${ctx.endpoint} (${ctx.op}): ${detail}. ` +
        'Check the access key id and secret access key (options, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS profile) and the bucket policy.';
      break;
    case 'config':
      message = /region is missing/i.test(detail)
        ? `S3 ${ctx.op} at ${where}: no AWS region configured: set the "region" option or AWS_REGION`
        : `S3 bucket "${ctx.bucket}" does not exist at ${ctx.endpoint} (${ctx.op}): ${detail}`;
      break;
    case 'not-found':
      message = `${where} does not exist (S3 ${ctx.op})`;
      break;
    case 'transient':
      message = `S3 ${ctx.op} failed at ${ctx.location} (transient, may be retried): ${detail}`;
      break;
    default:
      message = `S3 ${ctx.op} failed at ${ctx.location}: ${detail}`;
  }
  return new StorageError(message, { kind, location: where, cause: err });
}
