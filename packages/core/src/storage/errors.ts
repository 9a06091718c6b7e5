/** Why a storage operation failed. */
export type StorageErrorKind = 'not-found' | 'transient' | 'permission' | 'auth' | 'config' | 'integrity' | 'other';

export interface StorageErrorOptions {
  kind: StorageErrorKind;
  /** Where: the storage location and/or file path. Never a credential. */
  location?: string;
  cause?: unknown;
}

/**
 * An error from a storage adapter. `kind` tells the retry layer and the CLI what
 * happened: `transient` errors are retried, the rest fail at once.
 */
export class StorageError extends Error {
  readonly kind: StorageErrorKind;
  readonly location: string | undefined;
  constructor(message: string, options: StorageErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StorageError';
    this.kind = options.kind;
    this.location = options.location;
  }
  get transient(): boolean {
    return this.kind === 'transient';
  }
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'ESOCKETTIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

const TRANSIENT_NAMES = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'InternalError',
  'ServiceUnavailable',
  'RequestTimeTooSkewed',
]);

/**
 * True if retrying `err` may succeed: a {@link StorageError} of kind `transient`,
 * a network error code, an HTTP 5xx or 429 status, or a throttling error name.
 */
export function isTransientError(err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false;
  const e = err as {
    kind?: unknown;
    transient?: unknown;
    code?: unknown;
    name?: unknown;
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
    statusCode?: unknown;
    cause?: unknown;
  };
  // A StorageError, also one from another copy of @kiwi-backup/core (a custom adapter's own
  // dependency): its kind decides, never its cause (a permission error caused by a reset is final).
  if (err instanceof StorageError || (e.name === 'StorageError' && typeof e.kind === 'string')) return e.kind === 'transient';
  if (e.transient === true) return true;
  if (typeof e.code === 'string' && TRANSIENT_CODES.has(e.code)) return true;
  if (typeof e.name === 'string' && TRANSIENT_NAMES.has(e.name)) return true;
  if (e.$retryable) return true;
  const status = e.$metadata?.httpStatusCode ?? (typeof e.statusCode === 'number' ? e.statusCode : undefined);
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return true;
  if (e.cause !== undefined && e.cause !== err) return isTransientError(e.cause);
  return false;
}
