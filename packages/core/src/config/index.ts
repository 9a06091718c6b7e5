export * from './config.js';
export { parseJsonc, JsonSyntaxError, type JsonPosition, type ParsedJson } from './jsonc.js';
export { closestMatch, levenshtein, normalizeName } from './suggest.js';
