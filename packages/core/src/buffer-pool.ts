/**
 * A small pool of large, reusable buffers. Fresh memory is expensive (a page fault on every new
 * page, and the allocator hands freed large blocks back to the OS), so hot paths borrow their
 * working buffers here and give them back when done: the chunk readers during a backup, and the
 * ranged pack reads of a restore.
 */
export interface BufferPoolOptions {
  /** How many idle buffers are kept (default 2). */
  maxIdle?: number;
  /**
   * Allocate in power-of-two sizes of at least this many bytes (default: exact sizes). With varying
   * request sizes — ranged reads of up to a few MiB — an exact-size buffer rarely fits the next
   * request, so every read would allocate; rounded ones fit after the first few.
   */
  sizeClassesFrom?: number;
  /** Buffers larger than this are not kept when released (default: no limit). */
  maxPooledSize?: number;
  /**
   * Most bytes the idle buffers may hold together (default: no limit). Without it, a pool that
   * keeps the larger buffers ratchets up to `maxIdle` buffers of the largest size ever asked for.
   */
  maxIdleBytes?: number;
}

export class BufferPool {
  private readonly free: Buffer[] = [];
  /** How many idle buffers are kept; when full, a released buffer replaces a smaller idle one. */
  maxIdle: number;
  private readonly minClass: number | undefined;
  private readonly maxPooled: number;
  private maxIdleBytes: number;
  private idleBytes = 0;

  constructor(options: BufferPoolOptions = {}) {
    this.maxIdle = options.maxIdle ?? 2;
    this.minClass = options.sizeClassesFrom;
    this.maxPooled = options.maxPooledSize ?? Infinity;
    this.maxIdleBytes = options.maxIdleBytes ?? Infinity;
  }

  /** A buffer of at least `size` bytes (contents undefined): the smallest idle one that fits, or a new one. */
  acquire(size: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = this.free[i]!.length;
      if (len >= size && (best < 0 || len < this.free[best]!.length)) best = i;
    }
    if (best >= 0) {
      const b = this.free[best]!;
      this.free[best] = this.free[this.free.length - 1]!;
      this.free.pop();
      this.idleBytes -= b.length;
      return b;
    }
    // Not from Node's shared slab: these are large and long-lived.
    return Buffer.allocUnsafeSlow(this.minClass === undefined ? size : sizeClass(size, this.minClass));
  }

  /** Returns a buffer obtained from {@link acquire}; the caller must not use it afterwards. */
  release(buf: Buffer): void {
    if (buf.length > this.maxPooled || buf.length > this.maxIdleBytes || this.maxIdle === 0 || this.free.includes(buf)) return;
    this.free.push(buf);
    this.idleBytes += buf.length;
    this.trim();
  }

  /**
   * Change how many idle buffers, and how many bytes of them, are kept (idle ones over the new limits
   * are dropped now). Returns the limits before, to put back with another call.
   */
  setLimits(limits: { maxIdle: number; maxIdleBytes: number }): { maxIdle: number; maxIdleBytes: number } {
    const before = { maxIdle: this.maxIdle, maxIdleBytes: this.maxIdleBytes };
    this.maxIdle = limits.maxIdle;
    this.maxIdleBytes = limits.maxIdleBytes;
    this.trim();
    return before;
  }

  /** Over a limit: drop the smallest idle buffers (the larger ones can serve any request). */
  private trim(): void {
    while (this.free.length > this.maxIdle || this.idleBytes > this.maxIdleBytes) {
      let smallest = 0;
      for (let i = 1; i < this.free.length; i++) if (this.free[i]!.length < this.free[smallest]!.length) smallest = i;
      this.idleBytes -= this.free[smallest]!.length;
      this.free[smallest] = this.free[this.free.length - 1]!;
      this.free.pop();
    }
  }

  /** Drops all idle buffers. */
  clear(): void {
    this.free.length = 0;
    this.idleBytes = 0;
  }

  /** Bytes held by the idle buffers. */
  get idleSize(): number {
    return this.idleBytes;
  }

  /** Number of idle buffers held. */
  get idle(): number {
    return this.free.length;
  }
}

/** The smallest power of two that is at least `size` and at least `min`. */
function sizeClass(size: number, min: number): number {
  let c = min;
  while (c < size) c *= 2;
  return c;
}

/** The pool used by the chunk readers when none is passed. */
export const sharedBufferPool = new BufferPool({ maxIdle: 2 });
