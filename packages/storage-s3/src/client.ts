/**
 * The AWS SDK, loaded once for the modules beside this one, and the S3 client's configuration
 * ({@link buildClientConfig}): HTTP transport and timeouts, region and endpoint addressing, credentials.
 */
import { createRequire } from 'node:module';
import type * as S3Sdk from '@aws-sdk/client-s3';
import type * as HttpHandlerModule from '@smithy/node-http-handler';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { DirectReadHandler, type InnerHandler } from './direct-read.js';
import { positiveInt, type S3StorageOptions } from './options.js';
import type { S3Target } from './url.js';

// The SDK's CommonJS build, loaded with require(): an ESM import of it makes Node first scan its 270 KB
// bundle for export names, ~30 ms added to the start of every command on an s3: repository.
export const {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} = createRequire(import.meta.url)('@aws-sdk/client-s3') as typeof S3Sdk;
export type S3Client = S3Sdk.S3Client;
const { NodeHttpHandler } = createRequire(import.meta.url)('@smithy/node-http-handler') as typeof HttpHandlerModule;

/** A logger that drops what the SDK would log. */
const SILENT_LOGGER = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export function buildClientConfig(
  target: S3Target,
  options: S3StorageOptions,
  env: NodeJS.ProcessEnv,
): { config: S3ClientConfig; transport: DirectReadHandler } {
  const maxSockets = positiveInt(options.maxSockets, 'maxSockets', 32);
  const connectionTimeout = positiveInt(options.connectionTimeoutMs, 'connectionTimeoutMs', 10_000);
  const socketTimeout = positiveInt(options.socketTimeoutMs, 'socketTimeoutMs', 120_000);
  const agent = { keepAlive: true, maxSockets };
  const inner = new NodeHttpHandler({ connectionTimeout, socketTimeout, httpAgent: agent, httpsAgent: agent });
  // Ranged reads into a caller's buffer skip Node's HTTP client (see direct-read.ts).
  const transport = new DirectReadHandler(inner as unknown as InnerHandler, { connectionTimeout, socketTimeout, maxSockets });
  const config: S3ClientConfig = {
    // The shared retry layer in core (withRetry) is the only one: no SDK retries.
    maxAttempts: 1,
    // Never aws-chunked uploads with trailing checksums (some S3-compatible servers store
    // the framing as object bytes); checksums only where an API requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: transport as unknown as S3ClientConfig['requestHandler'],
    // The SDK prints some failures to the console when it has no logger of its own (a failed
    // streamed upload); Kiwi reports every failure itself, once, through its error.
    logger: SILENT_LOGGER,
  };
  const region = options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (target.endpoint ? 'us-east-1' : undefined);
  if (region) config.region = region;
  if (target.endpoint) {
    config.endpoint = target.endpoint;
    config.forcePathStyle = options.forcePathStyle ?? true;
  } else {
    config.forcePathStyle = options.forcePathStyle ?? false;
    config.followRegionRedirects = true;
  }
  if (options.accessKeyId !== undefined || options.secretAccessKey !== undefined) {
    if (!options.accessKeyId || !options.secretAccessKey) {
      throw new TypeError('S3 options accessKeyId and secretAccessKey must be given together');
    }
    config.credentials = {
      accessKeyId: options.accessKeyId,
      secretAccessKey: options.secretAccessKey,
      ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}),
    };
  } else if (options.profile) {
    config.profile = options.profile;
  } else if (env !== process.env && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    // An explicit environment (not process.env, which the SDK's chain reads itself).
    config.credentials = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
  }
  return { config, transport };
}
