import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runKiwi, KIWI_BIN } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const COMMANDS = ['init', 'backup', 'snapshots', 'ls', 'restore', 'diff', 'check', 'plugins', 'completion'];

/** Whether a program is installed; under CI=true a missing one fails the test (`pnpm test:all` installs it). */
function hasCommand(cmd: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
  if (!found && process.env.CI === 'true') throw new Error(`${cmd} is not installed (pnpm test:all installs it)`);
  return found;
}

describe('--help', () => {
  it('the top-level help lists every command, the global options, the environment and the exit codes', async () => {
    const r = await runKiwi(['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    expect(r.stdout).toContain('Options every command takes:');
    expect(r.stdout).toContain('--password-file <file>');
    expect(r.stdout).toContain('Environment:');
    expect(r.stdout).toMatch(/^ {2}KIWI_PASSWORD_FILE /m);
    expect(r.stdout).toContain('Exit codes:');
    expect(r.stdout).toMatch(/^ {2}130 +interrupted/m);
    expect(r.stderr).toBe('');
  });

  it('help text has no trailing spaces, no timestamps and no escape sequences', async () => {
    for (const args of [['--help'], ['help', 'backup'], ['restore', '--help']]) {
      const r = await runKiwi(args);
      for (const line of r.stdout.split('\n')) {
        expect(line, `${args.join(' ')}: ${JSON.stringify(line)}`).not.toMatch(/\s$/);
        expect(line.length).toBeLessThanOrEqual(100);
      }
      // consola's fancy mode puts a time or a badge before a line; an example time inside a description is fine.
      expect(r.stdout).not.toMatch(/^\s*\[?\d\d:\d\d:\d\d/m);
      expect(r.stdout).not.toContain('\x1b');
    }
  });

  it('`kiwi help <command>` prints the same as `kiwi <command> --help`', async () => {
    const a = await runKiwi(['help', 'ls']);
    const b = await runKiwi(['ls', '--help']);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout).toMatch(/^Usage: kiwi ls \[options\] <snapshot>/);
    expect(a.stdout).toContain('Global options:');
  });

  it('a command group: its help lists the commands; each has its own', async () => {
    const group = await runKiwi(['help', 'repair']);
    expect(group.code).toBe(0);
    expect(group.stdout).toMatch(/^Usage: kiwi repair <index\|packs\|snapshots>$/m);
    expect(group.stdout).toMatch(/^ {2}index +Rebuild the index/m);
    const a = await runKiwi(['help', 'repair', 'index']);
    const b = await runKiwi(['repair', 'index', '--help']);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout).toMatch(/^Usage: kiwi repair index \[options\]/);
  });

  it('a missing argument is one line and a hint, not the whole help', async () => {
    const r = await runKiwi(['ls']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^kiwi ls: missing <snapshot>/);
    expect(lines[1]).toContain('kiwi help ls');
  });

  it('an unknown command or help topic suggests the closest one', async () => {
    const r = await runKiwi(['snapshtos']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('did you mean "snapshots"?');
    expect((await runKiwi(['help', 'restor'])).stderr).toContain('did you mean "restore"?');
    expect((await runKiwi(['snap'])).stderr).toContain('did you mean "snapshots"?');
  });

  it('a global option before the command: where it goes', async () => {
    const r = await runKiwi(['--repo', '/x', 'snapshots']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--repo goes after the command');
  });

  it('no arguments: the help on stderr, exit 2', async () => {
    const r = await runKiwi([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('Commands:');
  });
});

describe('shell completion', () => {
  /** Ask the bash completion function what it offers for a command line (the last word is completed). */
  function bashComplete(script: string, words: string[]): string[] {
    const dir = mkdtempSync(join(tmpdir(), 'kiwi-compl-'));
    try {
      const file = join(dir, 'kiwi.bash');
      writeFileSync(file, script);
      const wordsArr = words.map((w) => `'${w}'`).join(' ');
      const out = execFileSync(
        'bash',
        ['-c', `source ${file}; COMP_WORDS=(${wordsArr}); COMP_CWORD=${words.length - 1}; _kiwi; printf '%s\\n' "\${COMPREPLY[@]}"`],
        { encoding: 'utf8', cwd: dir },
      );
      return out.split('\n').filter(Boolean).sort();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('bash: commands, each command\'s options, and shells for `completion`', async () => {
    const r = await runKiwi(['completion', 'bash']);
    expect(r.code).toBe(0);
    expect(bashComplete(r.stdout, ['kiwi', 'sn'])).toEqual(['snapshots']);
    expect(bashComplete(r.stdout, ['kiwi', 'backup', '--exclude-f'])).toEqual(['--exclude-file']);
    expect(bashComplete(r.stdout, ['kiwi', 'backup', '--exc'])).toEqual(expect.arrayContaining(['--exclude', '--exclude-file']));
    expect(bashComplete(r.stdout, ['kiwi', 'restore', '--tar'])).toEqual(['--target']);
    expect(bashComplete(r.stdout, ['kiwi', 'completion', ''])).toEqual(['bash', 'fish', 'zsh']);
    expect(bashComplete(r.stdout, ['kiwi', 'help', 'pl'])).toEqual(['plugins']);
    // A command group: its commands, then each one's options.
    expect(bashComplete(r.stdout, ['kiwi', 'repair', ''])).toEqual(['index', 'packs', 'snapshots']);
    expect(bashComplete(r.stdout, ['kiwi', 'repair', 'index', '--read'])).toEqual(['--read-all-packs']);
    // Every command of the table completes.
    expect(bashComplete(r.stdout, ['kiwi', ''])).toEqual(expect.arrayContaining(COMMANDS));
  });

  it('zsh and fish scripts name every command and parse (when the shell is installed)', async () => {
    for (const shell of ['zsh', 'fish'] as const) {
      const r = await runKiwi(['completion', shell]);
      expect(r.code).toBe(0);
      for (const c of COMMANDS) expect(r.stdout).toContain(c);
      expect(r.stdout).toContain('password-file');
      if (hasCommand(shell)) {
        const dir = mkdtempSync(join(tmpdir(), 'kiwi-compl-'));
        try {
          writeFileSync(join(dir, 'script'), r.stdout);
          expect(spawnSync(shell, ['-n', join(dir, 'script')], { encoding: 'utf8' }).status).toBe(0);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  });

  it('an unknown shell is a usage error with a suggestion', async () => {
    const r = await runKiwi(['completion', 'bsh']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('did you mean "bash"?');
  });
});

describe('generated reference', () => {
  it('docs/cli.md and the man pages are up to date with the command definitions (run `pnpm docs:cli`)', async () => {
    const { generatedDocs } = (await import(pathToFileURL(join(dirname(KIWI_BIN), 'docs.js')).href)) as {
      generatedDocs: () => Promise<Map<string, string>>;
    };
    const files = await generatedDocs();
    expect([...files.keys()]).toEqual(
      expect.arrayContaining(['docs/cli.md', 'apps/cli/man/kiwi.1', 'apps/cli/man/kiwi-repair-index.1', ...COMMANDS.map((c) => `apps/cli/man/kiwi-${c}.1`)]),
    );
    for (const [rel, text] of files) {
      expect(readFileSync(join(root, rel), 'utf8'), `${rel} is out of date: run \`pnpm docs:cli\``).toBe(text);
    }
  });

  it('the man pages render without groff warnings (when groff is installed)', () => {
    if (!hasCommand('groff')) return;
    for (const f of readdirSync(join(root, 'apps/cli/man'))) {
      const c = f;
      const r = spawnSync('groff', ['-man', '-ww', '-z', join(root, 'apps/cli/man', f)], { encoding: 'utf8' });
      expect(r.stderr, c).toBe('');
    }
  });
});
