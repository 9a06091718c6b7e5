/** `next` as a middleware sees it: runs the rest of the chain. */
export type Next = () => Promise<void>;

/** A Koa-style middleware: do work, `await next()` to run the rest of the chain, do more work. */
export type Middleware<Ctx> = (ctx: Ctx, next: Next) => unknown;

/** A composed chain; it is itself a middleware, so chains nest. */
export type ComposedMiddleware<Ctx> = (ctx: Ctx, next?: Next) => Promise<void>;

/**
 * Compose middleware with Koa semantics:
 * - code before `await next()` runs in order, code after it in reverse order;
 * - `next()` called twice by one middleware rejects;
 * - a synchronous throw becomes a rejection;
 * - the list is validated eagerly (a non-function throws a TypeError at compose time);
 * - the result is a middleware itself: its optional `next` runs after the last one.
 */
export function compose<Ctx>(middleware: readonly Middleware<Ctx>[]): ComposedMiddleware<Ctx> {
  if (!Array.isArray(middleware)) throw new TypeError('compose: middleware must be an array');
  middleware.forEach((fn, i) => {
    if (typeof fn !== 'function') {
      throw new TypeError(`compose: middleware[${i}] must be a function, got ${fn === null ? 'null' : typeof fn}`);
    }
  });
  const stack = middleware.slice();
  return function composed(ctx: Ctx, next?: Next): Promise<void> {
    let index = -1;
    function dispatch(i: number): Promise<void> {
      if (i <= index) return Promise.reject(new Error('next() called multiple times'));
      index = i;
      const fn = i === stack.length ? next : stack[i];
      if (!fn) return Promise.resolve();
      try {
        return Promise.resolve(fn(ctx, dispatch.bind(null, i + 1))).then(() => undefined);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return dispatch(0);
  };
}
