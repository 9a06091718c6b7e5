/**
 * Pack uploads with bounded parallelism, for both packers (in memory and in temporary files): at
 * most `maxInFlight` run at once, the others wait their turn in order. {@link size} counts an upload
 * from the moment it is added until it settles; {@link ended} lets a packer wait for room.
 */
export class UploadQueue {
  private readonly uploads = new Set<Promise<void>>();
  private readonly queue: Array<() => void> = [];
  private running = 0;
  private waiters: Array<() => void> = [];

  constructor(private readonly maxInFlight: number) {}

  /** Uploads running or waiting. */
  get size(): number {
    return this.uploads.size;
  }

  /** Run `task` (which must not reject) once fewer than `maxInFlight` uploads run. */
  add(task: () => Promise<void>): void {
    const upload = new Promise<void>((resolve) => {
      const start = () => {
        this.running++;
        void task().finally(() => {
          this.running--;
          this.queue.shift()?.();
          resolve();
        });
      };
      if (this.running < this.maxInFlight) start();
      else this.queue.push(start);
    });
    this.uploads.add(upload);
    void upload.then(() => {
      this.uploads.delete(upload);
      const w = this.waiters;
      this.waiters = [];
      for (const wake of w) wake();
    });
  }

  /** Resolves when the next upload has ended (and left {@link size}). */
  ended(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Resolves once no upload runs or waits. */
  async idle(): Promise<void> {
    while (this.uploads.size > 0) await Promise.allSettled([...this.uploads]);
  }
}

