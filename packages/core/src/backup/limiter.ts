/** A counting semaphore: at most `limit` holders at once; waiters are served in order. */
export class Limiter {
  #active = 0;
  readonly #waiters: Array<() => void> = [];
  constructor(readonly limit: number) {}

  /** Resolves when a slot is free; call `release()` once done. */
  acquire(): Promise<void> | undefined {
    if (this.#active < this.limit) {
      this.#active++;
      return undefined;
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Takes a slot if one is free, without waiting. */
  tryAcquire(): boolean {
    if (this.#active < this.limit) {
      this.#active++;
      return true;
    }
    return false;
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#active--;
  }

  get active(): number {
    return this.#active;
  }
}
