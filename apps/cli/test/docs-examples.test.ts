/**
 * The documentation's examples work as written: the API example (docs/examples/api.ts, embedded in
 * docs/api.md) type-checks and runs against the built packages; the README's config example is a
 * valid config; every repository URL the README and docs show parses; every `kiwi` command line
 * in them names a real command and real options.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig, parseRepositoryUrl } from '@kiwi-backup/core';
import { parseSftpUrl } from '@kiwi-backup/storage-sftp';
import { parseS3Url } from '@kiwi-backup/storage-s3';
import { KIWI_BIN } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const read = (rel: string) => readFileSync(join(root, rel), 'utf8');
const DOCS = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md') && f !== 'cli.md').map((f) => `docs/${f}`)];

/** Fenced code blocks of a Markdown text, with their language. */
function codeBlocks(md: string): Array<{ lang: string; code: string }> {
  return [...md.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }));
}

describe('docs/api.md', () => {
  it('embeds docs/examples/api.ts verbatim', () => {
    const example = read('docs/examples/api.ts');
    expect(codeBlocks(read('docs/api.md')).some((b) => b.lang === 'ts' && b.code === example)).toBe(true);
  });

  it('the example type-checks and runs against the built packages', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiwi-api-example-'));
    try {
      mkdirSync(join(dir, 'node_modules', '@kiwi-backup'), { recursive: true });
      for (const pkg of ['core', 'storage-local']) symlinkSync(join(root, 'packages', pkg), join(dir, 'node_modules', '@kiwi-backup', pkg));
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
      writeFileSync(join(dir, 'api.ts'), read('docs/examples/api.ts'));
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            outDir: 'out',
            types: ['node'],
            typeRoots: [join(root, 'node_modules', '@types')],
          },
          files: ['api.ts'],
        }),
      );
      execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' });
      const out = execFileSync(process.execPath, [join(dir, 'out', 'api.js'), join(dir, 'work')], { encoding: 'utf8' });
      expect(out).toMatch(/created repository [0-9a-f]+/);
      expect(out).toMatch(/restored 1 files from [0-9a-f]{8}, 0 errors/);
      expect(out).toContain('check: 0 errors');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('README and docs examples', () => {
  it('the README\'s config example is a valid config', () => {
    const blocks = codeBlocks(read('README.md')).filter((b) => b.lang === 'jsonc');
    expect(blocks.length).toBeGreaterThan(0);
    for (const b of blocks) {
      const cfg = parseConfig(b.code, '/home/me/.local/share/kiwi/config.json', '/home/me');
      if (cfg.repository) parseUrl(cfg.repository);
    }
  });

  /** Parse a repository URL the way `kiwi --repo` does (the adapter's own parser for s3: and sftp:). */
  function parseUrl(url: string): void {
    const { scheme } = parseRepositoryUrl(url);
    if (scheme === 'sftp') parseSftpUrl(url);
    else if (scheme === 's3') parseS3Url(url);
  }

  it('every sftp: and s3: URL in the README and docs parses', () => {
    let seen = 0;
    for (const doc of DOCS) {
      for (const m of read(doc).matchAll(/`((?:sftp|s3):[^`\s]+)`|"((?:sftp|s3):[^"\s]+)"/g)) {
        const url = m[1] ?? m[2]!;
        if (/[<>…]|\.\.\./.test(url)) continue; // a placeholder (`s3:...`, `sftp:user@host:/<path>`)
        expect(() => parseUrl(url), `${doc}: ${url}`).not.toThrow();
        seen++;
      }
    }
    expect(seen).toBeGreaterThan(3);
  });

  it('every kiwi command line in the README and docs names a real command and real options', async () => {
    const { describeCommands } = (await import(pathToFileURL(join(dirname(KIWI_BIN), 'docs.js')).href)) as {
      describeCommands: () => Promise<Array<{ name: string; options: Array<{ name: string; aliases: string[] }> }>>;
    };
    const commands = new Map((await describeCommands()).map((c) => [c.name, c]));
    let seen = 0;
    for (const doc of DOCS) {
      const code = codeBlocks(read(doc)).map((b) => b.code).join('\n') + '\n' + [...read(doc).matchAll(/`([^`\n]*\bkiwi [^`\n]*)`/g)].map((m) => m[1]).join('\n');
      for (const m of code.matchAll(/(?:^|[\s(`]|&& )(?:pnpm )?kiwi ([a-z][a-z-]*)((?: [a-z][a-z-]*)?)([^\n`|;&)]*)/g)) {
        if (m[1] === 'help') continue;
        // A group's command (`kiwi repair index`), else the command and its arguments.
        const two = `${m[1]}${m[2]}`;
        const name = commands.has(two) ? two : m[1]!;
        const rest = commands.has(two) ? m[3]! : `${m[2]}${m[3]}`;
        const cmd = commands.get(name);
        // The README shows only commands that exist; a page in docs/ may describe one still to come.
        if (doc === 'README.md') expect(cmd, `${doc}: kiwi ${name}`).toBeDefined();
        if (!cmd) continue;
        for (const opt of rest.matchAll(/(?:^|\s|\[)--([a-z][a-z-]*)/g)) {
          const known = cmd!.options.some((o) => o.name === opt[1] || o.aliases.includes(opt[1]!)) || ['help'].includes(opt[1]!);
          expect(known, `${doc}: kiwi ${name} --${opt[1]}`).toBe(true);
        }
        seen++;
      }
    }
    expect(seen).toBeGreaterThan(5);
  });
});
