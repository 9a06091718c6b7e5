/** Levenshtein edit distance (insert, delete, substitute; each costs 1). */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  if (!a.length) return b.length;
  if (!b.length) return a.length;
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/** Lower-case and drop `_`, `-`, spaces and dots, so `on_backup_start` ≈ `onBackupStart`. */
export function normalizeName(s: string): string {
  return s.toLowerCase().replace(/[_\-\s.]/g, '');
}

/**
 * The candidate closest to `input` by case/underscore-insensitive Levenshtein
 * distance, or undefined when none is within `maxDistance` (default: about a
 * third of the longer name, at least 2).
 */
export function closestMatch(input: string, candidates: readonly string[], maxDistance?: number): string | undefined {
  const n = normalizeName(input);
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(n, normalizeName(c));
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  if (best === undefined) return undefined;
  const limit = maxDistance ?? Math.max(2, Math.ceil(Math.max(n.length, best.length) / 3));
  return bestD <= limit ? best : undefined;
}
