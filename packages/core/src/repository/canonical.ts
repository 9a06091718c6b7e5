/**
 * Canonical JSON: object keys sorted (by UTF-16 code units), `undefined` members
 * dropped, no whitespace. Identical values always give identical bytes, so identical
 * directories give identical tree blobs (and dedupe).
 */
export function canonicalJson(value: unknown): string {
  return write(value, 0);
}

function write(v: unknown, depth: number): string {
  if (depth > 256) throw new RangeError('canonicalJson: nesting deeper than 256 levels');
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`canonicalJson: non-finite number ${v}`);
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      throw new TypeError('canonicalJson: bigint is not JSON (store it as a decimal string)');
    case 'object': {
      if (Array.isArray(v)) {
        let s = '[';
        for (let i = 0; i < v.length; i++) {
          if (i) s += ',';
          const item: unknown = v[i];
          s += item === undefined || typeof item === 'function' ? 'null' : write(item, depth + 1);
        }
        return s + ']';
      }
      const obj = v as Record<string, unknown> & { toJSON?: () => unknown };
      if (typeof obj.toJSON === 'function') return write(obj.toJSON(), depth + 1);
      const keys = Object.keys(obj).sort();
      let s = '{';
      let first = true;
      for (const k of keys) {
        const item = obj[k];
        if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
        if (!first) s += ',';
        first = false;
        s += JSON.stringify(k) + ':' + write(item, depth + 1);
      }
      return s + '}';
    }
    default:
      throw new TypeError(`canonicalJson: cannot encode a ${typeof v}`);
  }
}
