import { describe, expect, it } from 'vitest';
import { compose, type Middleware } from '../../src/middleware/compose.js';

type Ctx = { calls: string[] };

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('compose', () => {
  it('runs code before next() in order and after it in reverse (Koa order)', async () => {
    const mw = (n: string): Middleware<Ctx> => async (ctx, next) => {
      ctx.calls.push(`${n}:before`);
      await tick();
      await next();
      await tick();
      ctx.calls.push(`${n}:after`);
    };
    const ctx: Ctx = { calls: [] };
    await compose([mw('a'), mw('b'), mw('c')])(ctx);
    expect(ctx.calls).toEqual(['a:before', 'b:before', 'c:before', 'c:after', 'b:after', 'a:after']);
  });

  it('runs the optional final next after the last middleware', async () => {
    const ctx: Ctx = { calls: [] };
    await compose<Ctx>([
      async (c, next) => {
        c.calls.push('a');
        await next();
        c.calls.push('a-after');
      },
    ])(ctx, async () => {
      ctx.calls.push('final');
    });
    expect(ctx.calls).toEqual(['a', 'final', 'a-after']);
  });

  it('an empty chain resolves and still calls the final next', async () => {
    const calls: string[] = [];
    await compose<Ctx>([])({ calls }, async () => void calls.push('final'));
    expect(calls).toEqual(['final']);
  });

  it('stops when a middleware does not call next()', async () => {
    const ctx: Ctx = { calls: [] };
    await compose<Ctx>([(c) => void c.calls.push('a'), (c) => void c.calls.push('b')])(ctx);
    expect(ctx.calls).toEqual(['a']);
  });

  it('rejects when one middleware calls next() twice', async () => {
    const ran: string[] = [];
    const chain = compose<Ctx>([
      async (_c, next) => {
        await next();
        await next();
      },
      async () => void ran.push('b'),
    ]);
    await expect(chain({ calls: [] })).rejects.toThrow('next() called multiple times');
    expect(ran).toEqual(['b']);
  });

  it('turns a synchronous throw into a rejection', () => {
    const chain = compose<Ctx>([
      () => {
        throw new Error('sync boom');
      },
    ]);
    let p: Promise<void> | undefined;
    expect(() => {
      p = chain({ calls: [] });
    }).not.toThrow();
    return expect(p).rejects.toThrow('sync boom');
  });

  it('propagates downstream rejections to upstream middleware, which can catch them', async () => {
    const seen: unknown[] = [];
    await compose<Ctx>([
      async (_c, next) => {
        try {
          await next();
        } catch (e) {
          seen.push((e as Error).message);
        }
      },
      async () => {
        throw new Error('inner');
      },
    ])({ calls: [] });
    expect(seen).toEqual(['inner']);
  });

  it('validates eagerly: a non-function throws a TypeError at compose time, naming the index', () => {
    expect(() => compose([async () => {}, 'nope' as never])).toThrow(TypeError);
    expect(() => compose([async () => {}, null as never])).toThrow(/middleware\[1\].*null/);
    expect(() => compose('x' as never)).toThrow(/must be an array/);
  });

  it('is not affected by later changes to the input array', async () => {
    const calls: string[] = [];
    const list: Middleware<Ctx>[] = [(c, n) => (c.calls.push('a'), n())];
    const chain = compose(list);
    list.push((c) => void c.calls.push('b'));
    await chain({ calls });
    expect(calls).toEqual(['a']);
  });

  it('a composed chain is itself a middleware (nested chains keep Koa order)', async () => {
    const mw = (n: string): Middleware<Ctx> => async (ctx, next) => {
      ctx.calls.push(`${n}>`);
      await next();
      ctx.calls.push(`<${n}`);
    };
    const inner = compose([mw('i1'), mw('i2')]);
    const outer = compose<Ctx>([mw('o1'), inner, mw('o2')]);
    const ctx: Ctx = { calls: [] };
    await outer(ctx, async () => void ctx.calls.push('end'));
    expect(ctx.calls).toEqual(['o1>', 'i1>', 'i2>', 'o2>', 'end', '<o2', '<i2', '<i1', '<o1']);
  });

  it('a chain can be run many times; each run gets a fresh next() budget', async () => {
    let n = 0;
    const chain = compose<Ctx>([async (_c, next) => void (await next()), async () => void n++]);
    await chain({ calls: [] });
    await chain({ calls: [] });
    expect(n).toBe(2);
  });

  it('resolves to undefined whatever middleware returns', async () => {
    await expect(compose<Ctx>([() => 42])({ calls: [] })).resolves.toBeUndefined();
  });
});
