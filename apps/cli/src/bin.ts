#!/usr/bin/env node
import { run } from './main.js';

// The AWS SDK warns on every run under Node 20, which Kiwi supports; the warning is noise for Kiwi's users.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

run().catch((err: unknown) => {
  process.stderr.write(`kiwi: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
