/**
 * A small pool of large, reusable read buffers. Fresh memory is expensive
 * (page faults on every new page), so the chunk readers borrow their working
 * buffer here and give it back when the file is done.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  /** How many idle buffers are kept; more are dropped on release. */
  readonly maxIdle: number;

  constructor(options: { maxIdle?: number } = {}) {
    this.maxIdle = options.maxIdle ?? 2;
  }

  /** A buffer of at least `size` bytes (contents undefined). */
  acquire(size: number): Buffer {
    for (let i = this.free.length - 1; i >= 0; i--) {
      const b = this.free[i]!;
      if (b.length >= size) {
        this.free.splice(i, 1);
        return b;
      }
    }
    // Not from Node's shared slab: these are large and long-lived.
    return Buffer.allocUnsafeSlow(size);
  }

  /** Returns a buffer obtained from {@link acquire}; the caller must not use it afterwards. */
  release(buf: Buffer): void {
    if (this.free.length < this.maxIdle && !this.free.includes(buf)) this.free.push(buf);
  }

  /** Drops all idle buffers. */
  clear(): void {
    this.free.length = 0;
  }

  /** Number of idle buffers held. */
  get idle(): number {
    return this.free.length;
  }
}

/** The pool used by the chunk readers when none is passed. */
export const sharedBufferPool = new BufferPool({ maxIdle: 2 });
