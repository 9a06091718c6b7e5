#!/usr/bin/env -S node --single-threaded-gc
// Kiwi runs Node with V8's single-threaded garbage collector (the flag above; `env -S` splits it
// off, and npm's and pnpm's bin shims read it too). Kiwi's work is mostly Buffers that V8 tracks as
// external memory, so its collections are frequent but small: on few cores the 4 parallel GC helper
// threads cost more CPU than they save, and on a busy server, or with the storage server on the same
// machine, that CPU is taken from the work itself. docs/benchmarks.md has the measurements (faster
// restores over S3 and SFTP, local restores and backups unchanged). `node <path>/bin.js` runs without it.
import * as nodeModule from 'node:module';
import { prefetchKeys } from './key-prefetch.js';

// The repository's key derivation (scrypt) runs on the thread pool while the modules load.
prefetchKeys();

// Node 22.1+ keeps the compiled code of the modules in a cache on disk (in the temp directory, or
// $NODE_COMPILE_CACHE), which takes a good part off every later start; Node 20 has no such cache.
// It must be on before the rest of Kiwi loads, hence the dynamic imports below.
(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();

// The AWS SDK warns on every run under Node 20, which Kiwi supports; the warning is noise for Kiwi's users.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

async function start(): Promise<void> {
  const { isBrokenPipe, stdout } = await import('./stdout.js');
  // Installs the handler that turns a broken stdout pipe into a quiet exit 0 (see stdout.ts).
  stdout();
  const { run } = await import('./main.js');
  await run().catch((err: unknown) => {
    if (!isBrokenPipe(err)) throw err;
  });
}

start().catch((err: unknown) => {
  // Commands report their own errors; this is for failures around them (a module that does not load).
  const verbose = process.argv.includes('--verbose') || process.argv.includes('-v');
  process.stderr.write(`kiwi: ${verbose ? ((err as Error)?.stack ?? String(err)) : ((err as Error)?.message ?? String(err))}\n`);
  process.exitCode = 1;
});
