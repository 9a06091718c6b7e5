import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';

/**
 * Resolves uid/gid to user/group names for tree nodes. `/etc/passwd` and
 * `/etc/group` are read once (lazily, on first use); `os.userInfo()` fills in
 * the current user if it is missing there. Unknown ids resolve to undefined.
 */
export class OwnerNames {
  #users: Map<number, string> | undefined;
  #groups: Map<number, string> | undefined;

  user(uid: number): string | undefined {
    this.#users ??= this.#load('/etc/passwd', true);
    return this.#users.get(uid);
  }

  group(gid: number): string | undefined {
    this.#groups ??= this.#load('/etc/group', false);
    return this.#groups.get(gid);
  }

  #load(file: string, users: boolean): Map<number, string> {
    const map = new Map<number, string>();
    try {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const parts = line.split(':');
        const name = parts[0];
        const id = Number(parts[2]);
        if (name && Number.isInteger(id) && !map.has(id)) map.set(id, name);
      }
    } catch {
      // No such file (e.g. Windows, minimal containers): fall back below.
    }
    if (users) {
      try {
        const me = userInfo();
        if (me.uid >= 0 && !map.has(me.uid)) map.set(me.uid, me.username);
      } catch {
        // userInfo throws when the current uid has no passwd entry.
      }
    }
    return map;
  }
}
