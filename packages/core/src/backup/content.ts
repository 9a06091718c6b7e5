import type { ContentSource } from '../plugins/types.js';

/**
 * Turns a plug-in's {@link ContentSource} (bytes, a string, or a factory of a
 * stream / async iterable) into an async iterable of byte pieces.
 */
export async function* contentPieces(source: ContentSource): AsyncGenerator<Uint8Array, void, undefined> {
  if (typeof source === 'string') {
    yield Buffer.from(source, 'utf8');
    return;
  }
  if (source instanceof Uint8Array) {
    yield source;
    return;
  }
  if (typeof source !== 'function') {
    throw new TypeError(`content must be a Buffer, Uint8Array, string or a function returning a stream, got ${typeof source}`);
  }
  const stream = await source();
  if (stream == null || typeof (stream as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function') {
    throw new TypeError('content factory must return a Readable or an AsyncIterable of bytes');
  }
  for await (const piece of stream as AsyncIterable<unknown>) {
    if (typeof piece === 'string') yield Buffer.from(piece, 'utf8');
    else if (piece instanceof Uint8Array) yield piece;
    else throw new TypeError(`content stream yielded ${typeof piece}, expected bytes`);
  }
}
