/**
 * `mkdir -p` that always ends. Node's `mkdir(path, { recursive: true })`
 * loops forever at 100 % CPU where mkdir(2) keeps answering ENOENT although
 * the parent exists (`/proc/self/x`, some FUSE and network file systems):
 * Node takes ENOENT to mean "create the parent first", and the parent is
 * there. Here each missing ancestor is created once, from the top down, and a
 * directory that still cannot be created is a clear error.
 */
import { mkdir, stat } from 'node:fs/promises';
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export interface MakeDirectoryOptions {
  /** Mode of the directories created (the umask applies). Default 0o777. */
  mode?: number;
}

type Errno = NodeJS.ErrnoException;

function fail(path: string, err: Errno, why?: string): Errno {
  const code = err.code ?? 'EIO';
  const reason = why ?? (err.message.replace(/^[A-Z]+: /, '').replace(/, mkdir .*$/, '') || code);
  return Object.assign(new Error(`cannot create directory ${path}: ${reason}`, { cause: err }), { code, errno: err.errno, syscall: 'mkdir', path });
}

function notDirectory(path: string): Errno {
  return Object.assign(new Error(`cannot create directory ${path}: something that is not a directory is in the way`), {
    code: 'ENOTDIR',
    syscall: 'mkdir',
    path,
  });
}

const NO_PARENT =
  'the file system refuses it (mkdir says ENOENT although the parent directory exists; /proc and some virtual file systems do not hold new directories)';

/**
 * Creates `path` and its missing ancestors. Resolves `{ created }`: whether
 * `path` itself was made now (false when it was already a directory; a
 * symlink to one counts). Rejects with an Error carrying the `code`, `syscall`
 * (`mkdir`) and `path`, and a message naming the directory and the reason.
 */
export async function makeDirectory(path: string, options: MakeDirectoryOptions = {}): Promise<{ created: boolean }> {
  const target = resolve(path);
  const mode = options.mode ?? 0o777;
  const missing: string[] = [];
  for (let p = target; ; ) {
    try {
      await mkdir(p, { mode });
      if (p === target) return { created: true };
      break;
    } catch (err) {
      const e = err as Errno;
      if (e.code === 'EEXIST') {
        if (!(await stat(p).then((s) => s.isDirectory(), () => false))) throw notDirectory(p);
        if (p === target) return { created: false };
        break;
      }
      const parent = dirname(p);
      if (e.code !== 'ENOENT' || parent === p) throw fail(p, e);
      missing.push(p);
      p = parent;
    }
  }
  // The deepest existing ancestor is there: create the rest downwards, each once.
  for (let i = missing.length - 1; i >= 0; i--) {
    const p = missing[i]!;
    try {
      await mkdir(p, { mode });
    } catch (err) {
      const e = err as Errno;
      if (e.code === 'EEXIST') {
        if (!(await stat(p).then((s) => s.isDirectory(), () => false))) throw notDirectory(p);
        continue;
      }
      throw fail(p, e, e.code === 'ENOENT' ? NO_PARENT : undefined);
    }
  }
  return { created: true };
}

/** The synchronous {@link makeDirectory}. */
export function makeDirectorySync(path: string, options: MakeDirectoryOptions = {}): { created: boolean } {
  const target = resolve(path);
  const mode = options.mode ?? 0o777;
  const isDir = (p: string) => {
    try {
      return statSync(p).isDirectory();
    } catch {
      return false;
    }
  };
  const missing: string[] = [];
  for (let p = target; ; ) {
    try {
      mkdirSync(p, { mode });
      if (p === target) return { created: true };
      break;
    } catch (err) {
      const e = err as Errno;
      if (e.code === 'EEXIST') {
        if (!isDir(p)) throw notDirectory(p);
        if (p === target) return { created: false };
        break;
      }
      const parent = dirname(p);
      if (e.code !== 'ENOENT' || parent === p) throw fail(p, e);
      missing.push(p);
      p = parent;
    }
  }
  for (let i = missing.length - 1; i >= 0; i--) {
    const p = missing[i]!;
    try {
      mkdirSync(p, { mode });
    } catch (err) {
      const e = err as Errno;
      if (e.code === 'EEXIST') {
        if (!isDir(p)) throw notDirectory(p);
        continue;
      }
      throw fail(p, e, e.code === 'ENOENT' ? NO_PARENT : undefined);
    }
  }
  return { created: true };
}
