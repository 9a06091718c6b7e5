import { defineConfig } from 'tsup';

// Built only so plain Node scripts (the benchmark) can start the same servers the tests use.
export default defineConfig({
  entry: ['src/s3.ts', 'src/sshd.ts', 'src/tcp-proxy.ts', 'src/mariadb.ts'],
  format: ['esm'],
  target: 'node20',
  dts: false,
  clean: true,
});
