import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A running S3-compatible test server (s3rver in a child process). */
export interface S3TestServer {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** A bucket that exists when the server starts. */
  readonly bucket: string;
  /** Credentials the server accepts (random per server). */
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly port: number;
  /** The server's data directory (removed by `stop`). */
  readonly directory: string;
  /** Kill the server and delete its data. */
  stop(): Promise<void>;
  /** Kill the server abruptly (SIGKILL), keep its data; `restart()` brings it back on the same port. */
  halt(): Promise<void>;
  /** Kill the server if running and start it again on the same port with the same data. */
  restart(): Promise<void>;
}

export interface S3TestServerOptions {
  /** Name of the bucket created at start (default `kiwi-test`). */
  bucket?: string;
}

const require = createRequire(import.meta.url);

/** True if the S3 test server package is installed (it is a dependency of this package). */
export function s3ServerAvailable(): boolean {
  try {
    require.resolve('@20minutes/s3rver');
    return true;
  } catch {
    return false;
  }
}

export const S3_SERVER_INSTALL_HINT = 'run `pnpm install` at the repository root (@20minutes/s3rver is a dependency of @kiwi-backup/test-servers)';

// The child: a CommonJS script run with `node -e`. It registers the credentials,
// starts s3rver on 127.0.0.1 and reports its port over IPC; it exits when the parent goes away.
const CHILD_SOURCE = `
const path = require('node:path');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { pipeline } = require('node:stream/promises');
const { Readable, Transform } = require('node:stream');
const lib = path.dirname(process.env.KIWI_S3RVER_MAIN);
// s3rver streams objects with fs read streams of 64 KiB; on the shared 2-core test machines that
// makes the server the bottleneck of every large GET. Read 1 MiB at a time, as production S3
// servers stream (s3rver picks createReadStream up when its store module loads, so set it first).
const createReadStream = fs.createReadStream;
fs.createReadStream = (p, opts) => createReadStream(p, { highWaterMark: 1024 * 1024, ...(typeof opts === 'string' ? { encoding: opts } : opts) });
const S3rver = require(process.env.KIWI_S3RVER_MAIN);
const AWSAccount = require(path.join(lib, 'models', 'account.js'));
const FilesystemStore = require(path.join(lib, 'stores', 'filesystem.js'));
const v4 = require(path.join(lib, 'signature', 'v4.js'));

AWSAccount.DUMMY_ACCOUNT.createKeyPair(process.env.KIWI_S3_ACCESS_KEY, process.env.KIWI_S3_SECRET_KEY);
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');

// Fixes for s3rver 4.0.x, so that it behaves like S3 where Kiwi relies on it:
// 1. It rebuilds the SigV4 canonical URI from route params and drops the trailing slash the
//    AWS SDK sends on bucket-level requests ('HEAD /bucket/', 'GET /bucket/?list-type=2'),
//    so those signatures never match. Sign what was actually requested.
const rawPaths = new WeakMap(); // request headers object -> request path
const getStringToSign = v4.getStringToSign;
v4.getStringToSign = (req, parsed) => {
  const raw = rawPaths.get(req.headers);
  const uri = typeof raw === 'string' && raw.endsWith('/') && !req.uri.endsWith('/') ? req.uri + '/' : req.uri;
  return getStringToSign({ ...req, uri }, parsed);
};
// 2. ListObjectsV2 continuation tokens use DES, which OpenSSL 3 no longer offers by default.
//    Map it to AES-128-CBC (the token only has to round-trip through this server).
const createCipheriv = crypto.createCipheriv;
const createDecipheriv = crypto.createDecipheriv;
const widen = (b) => Buffer.concat([b, b]);
crypto.createCipheriv = (alg, key, iv, opts) =>
  alg === 'des' ? createCipheriv('aes-128-cbc', widen(key), widen(iv), opts) : createCipheriv(alg, key, iv, opts);
crypto.createDecipheriv = (alg, key, iv, opts) =>
  alg === 'des' ? createDecipheriv('aes-128-cbc', widen(key), widen(iv), opts) : createDecipheriv(alg, key, iv, opts);
// 3. Objects are written in place (a reader sees partial files, concurrent PUTs interleave),
//    a Buffer body is reported stored before it is written, and the object, its MD5 (the
//    ETag) and its metadata are separate files updated one after the other. Write a temporary
//    file, then rename it into place and update the MD5/metadata under a per-key lock that
//    reads (HEAD/GET/list metadata) take too, so every PUT is atomic as on S3.
//    The MD5 and metadata files are written whole too (temporary file, then rename): a server
//    killed in the middle of a write (the fault tests halt it) must not leave a torn
//    metadata.json, which s3rver answers with HTTP 500 on every later list of the bucket
//    (and so on HeadBucket, which it routes to the bucket listing) until the file is removed.
let tmpCounter = 0;
const S3Object = require(path.join(lib, 'models', 'object.js'));
async function writeFileWhole(file, data) {
  const tmp = file + '.kiwi-tmp-' + process.pid + '-' + tmpCounter++;
  try {
    await fs.promises.writeFile(tmp, data);
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}
FilesystemStore.prototype.putMetadata = async function (bucket, key, metadata, md5) {
  const json = {};
  for (const [name, value] of Object.entries(metadata || {})) {
    if (S3Object.ALLOWED_METADATA.includes(name) || name.startsWith('x-amz-meta-')) json[name] = value;
  }
  if (md5) await writeFileWhole(this.getResourcePath(bucket, key, 'object.md5'), md5);
  await writeFileWhole(this.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(json, null, 2));
};
async function writeTemp(finalPath, content) {
  const tmp = finalPath + '.kiwi-tmp-' + process.pid + '-' + tmpCounter++;
  const md5 = crypto.createHash('md5');
  let size = 0;
  const hashing = new Transform({
    transform(chunk, encoding, callback) {
      md5.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  try {
    await pipeline(Buffer.isBuffer(content) ? Readable.from([content]) : content, hashing, fs.createWriteStream(tmp));
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  return { tmp, size, md5: md5.digest('hex') };
}
const keyLocks = new Map();
function withKeyLock(lockKey, fn) {
  const run = (keyLocks.get(lockKey) || Promise.resolve()).then(fn, fn);
  const tail = run.then(() => undefined, () => undefined);
  keyLocks.set(lockKey, tail);
  tail.then(() => { if (keyLocks.get(lockKey) === tail) keyLocks.delete(lockKey); });
  return run;
}
FilesystemStore.prototype.putContent = async function (finalPath, content) {
  const { tmp, size, md5 } = await writeTemp(finalPath, content);
  await fs.promises.rename(tmp, finalPath);
  return [size, md5];
};
FilesystemStore.prototype.putObject = async function (object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
  const { tmp, size, md5 } = await writeTemp(objectPath, object.content);
  return withKeyLock(objectPath, async () => {
    try {
      // The old MD5 goes first: a kill between the rename and the new MD5 then leaves no MD5
      // file, which s3rver recomputes from the object, rather than the old object's ETag.
      await fs.promises.unlink(this.getResourcePath(object.bucket, object.key, 'object.md5')).catch((err) => {
        if (err.code !== 'ENOENT') throw err;
      });
      await fs.promises.rename(tmp, objectPath);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      throw err;
    }
    await this.putMetadata(object.bucket, object.key, object.metadata, md5);
    return { size, md5 };
  });
};
// Reads inside a locked getObject call getMetadata again: let those through.
const readsHeld = new Map();
const getMetadataRaw = FilesystemStore.prototype.getMetadata;
// Files torn by a kill before the writes above were whole (an older server on the same data):
// a metadata.json that does not parse is dropped, an MD5 file that is not one is recomputed.
async function getMetadata(bucket, key) {
  try {
    const meta = await getMetadataRaw.call(this, bucket, key);
    if (/^"[0-9a-f]{32}"$/.test(meta.etag)) return meta;
    await fs.promises.rm(this.getResourcePath(bucket, key, 'object.md5'), { force: true });
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    await fs.promises.rm(this.getResourcePath(bucket, key, 'metadata.json'), { force: true });
  }
  return getMetadataRaw.call(this, bucket, key);
}
FilesystemStore.prototype.getMetadata = function (bucket, key) {
  const lockKey = this.getResourcePath(bucket, key, 'object');
  if (readsHeld.get(lockKey)) return getMetadata.call(this, bucket, key);
  return withKeyLock(lockKey, () => getMetadata.call(this, bucket, key));
};
// 4. 'Range: bytes=0-0' returns the whole object (an end of 0 is taken as "no end").
// 5. Objects up to 16 MiB (every pack, index and snapshot Kiwi writes) are answered from a small
//    pool of reused buffers, read whole and written with one socket write, instead of a fresh
//    buffer per chunk: production S3 servers stream from reused buffers, and s3rver's per-chunk
//    garbage otherwise costs more CPU than the transfer itself on the shared 2-core test machines.
//    A buffer goes back to the pool only once its response has finished (the kernel has the bytes).
const POOLED_MAX = 16 * 1024 * 1024;
const freeBuffers = [];
function takeBuffer(n) {
  let best = -1;
  for (let i = 0; i < freeBuffers.length; i++) {
    if (freeBuffers[i].length >= n && (best < 0 || freeBuffers[i].length < freeBuffers[best].length)) best = i;
  }
  if (best >= 0) return freeBuffers.splice(best, 1)[0];
  return Buffer.allocUnsafeSlow(Math.max(1 << 20, Math.ceil(n / (1 << 20)) * (1 << 20)));
}
function giveBuffer(buf) {
  if (freeBuffers.length < 8) freeBuffers.push(buf);
}
class PooledBody extends Readable {
  constructor(handle, start, length) {
    super();
    this.handle = handle;
    this.start = start;
    this.length = length;
    this.buf = null;
    this.reading = null;
    this.pushed = false;
    this.released = false;
  }
  _read() {
    if (this.reading) return;
    this.buf = takeBuffer(this.length);
    this.reading = (async () => {
      let off = 0;
      while (off < this.length) {
        const { bytesRead } = await this.handle.read(this.buf, off, this.length - off, this.start + off);
        if (bytesRead === 0) throw new Error('object shrank while it was read');
        off += bytesRead;
      }
    })();
    this.reading.then(
      () => {
        if (this.destroyed) return;
        this.pushed = true;
        this.push(this.buf.subarray(0, this.length));
        this.push(null);
      },
      (err) => this.destroy(err),
    );
  }
  /** The response carrying this body has finished: its buffer may be reused. */
  release() {
    if (this.buf && !this.released) {
      this.released = true;
      giveBuffer(this.buf);
    }
  }
  _destroy(err, cb) {
    // A buffer handed to the response is released by release(); one never pushed is free once its read settles.
    const settle = this.reading ? this.reading.catch(() => undefined) : Promise.resolve();
    settle
      .then(() => {
        if (!this.pushed) this.release();
        return this.handle.close();
      })
      .then(() => cb(err), () => cb(err));
  }
}
const getObject = FilesystemStore.prototype.getObject;
FilesystemStore.prototype.getObject = function (bucket, key, options) {
  // Metadata and content are read under the key's lock (the file is opened before it is released).
  const lockKey = this.getResourcePath(bucket, key, 'object');
  return withKeyLock(lockKey, async () => {
    readsHeld.set(lockKey, (readsHeld.get(lockKey) || 0) + 1);
    try {
      const object = await getObject.call(this, bucket, key, options);
      if (!object || !object.content) return object;
      const start = object.range ? object.range.start : 0;
      let end = object.range ? object.range.end : object.size - 1;
      if (object.range && options && options.start === 0 && options.end === 0) {
        end = 0;
        object.range = { start: 0, end: 0 };
      }
      const length = end + 1 - start;
      if (length <= POOLED_MAX) {
        const handle = await fs.promises.open(lockKey, 'r');
        object.content.destroy();
        object.content = new PooledBody(handle, start, length);
      }
      return object;
    } finally {
      const n = readsHeld.get(lockKey) - 1;
      if (n > 0) readsHeld.set(lockKey, n);
      else readsHeld.delete(lockKey);
    }
  });
};
// 6. Deleting an object also removes its emptied parent directories, which races with
//    concurrent deletes (DeleteObjects deletes all keys in parallel: ENOENT, HTTP 500) and
//    with concurrent PUTs into the same directory. Keep the directories: they are invisible to S3 clients.
FilesystemStore.prototype.deleteObject = function (bucket, key) {
  return withKeyLock(this.getResourcePath(bucket, key, 'object'), () => Promise.all(
    ['object', 'object.md5', 'metadata.json'].map((resource) =>
      fs.promises.unlink(this.getResourcePath(bucket, key, resource)).catch((err) => {
        if (err.code !== 'ENOENT') throw err;
      }),
    ),
  ));
};

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(process.env.KIWI_S3_PORT),
  silent: true,
  directory: process.env.KIWI_S3_DIR,
  vhostBuckets: false,
  configureBuckets: [{ name: process.env.KIWI_S3_BUCKET }],
});
server.middleware.unshift(async (ctx, next) => {
  rawPaths.set(ctx.req.headers, ctx.path);
  await next();
  const body = ctx.body;
  if (body instanceof PooledBody) ctx.res.once('finish', () => body.release());
});
server.run().then(
  (addr) => process.send({ port: addr.port }),
  (err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); },
);
process.on('disconnect', () => process.exit(0));
`;

/**
 * Start an S3-compatible server (s3rver) as a child process on a free loopback
 * port, with a temporary data directory, a fresh bucket and random credentials.
 * Running it in its own process keeps it off the test's event loop and lets
 * fault tests kill it mid-operation.
 */
export async function startS3Server(options: S3TestServerOptions = {}): Promise<S3TestServer> {
  const main = require.resolve('@20minutes/s3rver');
  const directory = await mkdtemp(join(tmpdir(), 'kiwi-s3rver-'));
  const bucket = options.bucket ?? 'kiwi-test';
  const accessKeyId = `KIWI${randomBytes(8).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(24).toString('base64url');
  let port = 0;
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const proc = spawn(process.execPath, ['-e', CHILD_SOURCE], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: {
        ...process.env,
        KIWI_S3RVER_MAIN: main,
        KIWI_S3_PORT: String(port),
        KIWI_S3_DIR: directory,
        KIWI_S3_BUCKET: bucket,
        KIWI_S3_ACCESS_KEY: accessKeyId,
        KIWI_S3_SECRET_KEY: secretAccessKey,
      },
    });
    let stderr = '';
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 8192) stderr += d;
    });
    child = proc;
    port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`s3rver did not start within 20 s (in ${directory})`));
      }, 20_000);
      proc.once('message', (msg: { port: number }) => {
        clearTimeout(timer);
        resolve(msg.port);
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited during start (code ${code}, signal ${signal}) in ${directory}: ${stderr.trim()}`));
      });
    });
    // Don't keep the test process alive because of the child.
    proc.unref();
    proc.channel?.unref();
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    // The child was unref'd so that it never keeps a process alive; while we wait for it to exit it
    // must, or Node may end before 'exit' arrives (and a caller's `await stop()` never returns).
    proc.ref();
    proc.kill('SIGKILL');
    await exited;
  };

  await launch();

  return {
    get endpoint() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    bucket,
    accessKeyId,
    secretAccessKey,
    directory,
    async stop() {
      await kill();
      await rm(directory, { recursive: true, force: true });
    },
    halt: kill,
    async restart() {
      await kill();
      // The port was just released; retry briefly in case the OS holds it a moment.
      for (let attempt = 0; ; attempt++) {
        try {
          await launch();
          return;
        } catch (err) {
          if (attempt >= 10) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
}

/** Where the s3rver package lives (for diagnostics). */
export function s3ServerPackageDir(): string {
  return dirname(require.resolve('@20minutes/s3rver'));
}
