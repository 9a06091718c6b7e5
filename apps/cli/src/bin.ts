#!/usr/bin/env node
import { run } from './main.js';

run().catch((err: unknown) => {
  process.stderr.write(`kiwi: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
