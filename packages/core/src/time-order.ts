/**
 * Orderings for the timestamps and ids in repository files, without the locale.
 *
 * `String#localeCompare` loads ICU's collation data (several MiB of the Node binary's pages, and its
 * first call costs milliseconds), and orders punctuation by the locale's rules rather than by the
 * instant a timestamp names. These compare by the instant, then by code point.
 */

/** By code point: ids, names. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Two ISO 8601 timestamps (`Date#toISOString`'s, or restic's with nanoseconds and an offset): by the
 * instant they name (to the millisecond), then by their text; a text that is no date at all (a
 * damaged file's) sorts by its text against the others, so the order stays total.
 */
export function compareTimes(a: string, b: string): number {
  const d = Date.parse(a) - Date.parse(b);
  return d < 0 ? -1 : d > 0 ? 1 : compareText(a, b);
}
