/**
 * What the CLI's bundled copy of citty gets for `consola` and `consola/utils` (tsup.config.ts
 * aliases them here). citty only prints through consola in `showUsage` and `runMain`, which Kiwi
 * does not call (it renders its own help and runs commands with `runCommand`); loading the real
 * consola cost ~70 ms at every start of every command. Should citty ever print through it, the
 * text still reaches the terminal, plain.
 */
const print =
  (stream: NodeJS.WriteStream) =>
  (...parts: unknown[]): void => {
    stream.write(`${parts.map((p) => (p instanceof Error ? p.message : String(p))).join(' ')}\n`);
  };

const consola = { log: print(process.stdout), info: print(process.stdout), warn: print(process.stderr), error: print(process.stderr) };
export default consola;
export { consola };

/** consola/utils' `colors`: every colour is the identity (no escape codes). */
export const colors: Record<string, (text: unknown) => string> = new Proxy(
  {},
  {
    get: () => (text: unknown) => String(text),
  },
);
