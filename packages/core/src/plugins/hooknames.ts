import { closestMatch, levenshtein, normalizeName } from '../config/suggest.js';
import { HOOK_NAMES, type HookName } from './types.js';

const VALID = new Set<string>(HOOK_NAMES);

/** Words people use for each part of a hook name, mapped to a canonical word. */
const SYNONYMS: Record<string, string> = {
  start: 'start', starts: 'start', started: 'start', begin: 'start', begins: 'start', before: 'start', pre: 'start',
  init: 'start', boot: 'start', startup: 'start', ready: 'start', launch: 'start', prepare: 'start', open: 'start',
  stop: 'stop', stops: 'stop', stopped: 'stop', end: 'stop', ends: 'stop', ended: 'stop', after: 'stop', post: 'stop',
  finish: 'stop', finished: 'stop', complete: 'stop', completed: 'stop', done: 'stop', close: 'stop', cleanup: 'stop',
  finally: 'stop',
  backup: 'backup', backups: 'backup', snapshot: 'backup', run: 'backup',
  file: 'file', files: 'file', entry: 'file', entries: 'file', each: 'file', path: 'file', item: 'file',
  server: 'server', app: 'server', daemon: 'server', service: 'server',
};

const HOOK_WORDS: Record<HookName, string[]> = {
  onServerStart: ['server', 'start'],
  onBackupStart: ['backup', 'start'],
  onFile: ['file'],
  onBackupStop: ['backup', 'stop'],
};

/** Split `onBackupStart`, `on_backup_start`, `ON-FILE` into lower-case words. */
function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w.toLowerCase());
}

const HOOK_PREFIXES = new Set(['on', 'before', 'after', 'pre', 'post', 'handle', 'when']);

/**
 * Whether an exported key is meant as a hook: it starts with `on`/`before`/`after`/…,
 * or is within a few edits of a hook name (case and `_` ignored).
 */
export function looksLikeHook(key: string): boolean {
  if (VALID.has(key)) return true;
  const w = words(key);
  if (w.length && HOOK_PREFIXES.has(w[0]!)) return true;
  if (/^on[a-z]/i.test(key)) return true;
  const n = normalizeName(key);
  return n.length >= 4 && HOOK_NAMES.some((h) => levenshtein(n, normalizeName(h)) <= 2);
}

/**
 * The valid hook a misnamed key most likely meant (`onStartBackup`, `on_backup_start`,
 * `beforeBackup` → `onBackupStart`; `onfile` → `onFile`; `onBackupEnd` → `onBackupStop`),
 * or undefined when nothing is close.
 */
export function suggestHookName(key: string): HookName | undefined {
  const n = normalizeName(key);
  for (const h of HOOK_NAMES) if (normalizeName(h) === n) return h;
  const ws = words(key).filter((w) => !HOOK_PREFIXES.has(w) || SYNONYMS[w] !== undefined);
  // A word we don't know (a typo like "Stp"): edit distance first.
  if (ws.some((w) => SYNONYMS[w] === undefined)) {
    const near = closestMatch(key, HOOK_NAMES) as HookName | undefined;
    if (near) return near;
  }
  // Compare canonical word sets: order and synonyms don't matter.
  const canon = new Set(ws.map((w) => SYNONYMS[w]).filter((w): w is string => w !== undefined));
  if (canon.size) {
    let best: HookName | undefined;
    let bestScore = 0;
    let tie = false;
    for (const h of HOOK_NAMES) {
      const hw = HOOK_WORDS[h];
      const common = hw.filter((w) => canon.has(w)).length;
      if (!common) continue;
      // Jaccard similarity; a plain "start" means the backup start, the common case.
      const union = new Set([...hw, ...canon]).size;
      const score = common / union + (h === 'onBackupStart' ? 0.01 : 0);
      if (score > bestScore + 1e-9) {
        best = h;
        bestScore = score;
        tie = false;
      } else if (Math.abs(score - bestScore) < 1e-9) tie = true;
    }
    if (best && !tie) return best;
  }
  return closestMatch(key, HOOK_NAMES) as HookName | undefined;
}

export function isHookName(key: string): key is HookName {
  return VALID.has(key);
}
