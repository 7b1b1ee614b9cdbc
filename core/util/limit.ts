/** Bounded concurrency without timers: a counting semaphore and an order-preserving mapLimit. */

export class Semaphore {
  #free: number;
  readonly #waiting: Array<() => void> = [];

  constructor(slots: number) {
    if (!(slots >= 1)) throw new RangeError(`a semaphore needs at least one slot, got ${slots}`);
    this.#free = slots;
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

/** Map with at most `limit` calls in flight; results keep the input order. The first failure rejects. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i], i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * A budget of bytes in flight: work that needs `n` bytes waits until they are free (first come, first served).
 * A request larger than the whole budget is clamped to it, so it runs alone rather than never.
 */
export class ByteBudget {
  #free: number;
  readonly #capacity: number;
  readonly #waiting: Array<{ n: number; resolve: () => void }> = [];

  constructor(capacity: number) {
    if (!(capacity >= 1)) throw new RangeError(`a byte budget needs at least one byte, got ${capacity}`);
    this.#capacity = capacity;
    this.#free = capacity;
  }

  async run<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
    const n = await this.acquire(bytes);
    try {
      return await fn();
    } finally {
      this.release(n);
    }
  }

  /** Take `bytes` (clamped to the capacity), waiting until they are free; returns what to `release`. */
  async acquire(bytes: number): Promise<number> {
    const n = this.#clamp(bytes);
    if (this.#waiting.length === 0 && n <= this.#free) this.#free -= n;
    else await new Promise<void>((resolve) => this.#waiting.push({ n, resolve }));
    return n;
  }

  /** Take `bytes` only if they are free now and nobody waits; returns what to `release`, or null. */
  tryAcquire(bytes: number): number | null {
    const n = this.#clamp(bytes);
    if (this.#waiting.length > 0 || n > this.#free) return null;
    this.#free -= n;
    return n;
  }

  release(n: number): void {
    this.#free += n;
    while (this.#waiting.length && this.#waiting[0].n <= this.#free) {
      const next = this.#waiting.shift()!;
      this.#free -= next.n;
      next.resolve();
    }
  }

  #clamp(bytes: number): number {
    return Math.min(Math.max(bytes, 1), this.#capacity);
  }
}
