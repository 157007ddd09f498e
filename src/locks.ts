interface Waiter {
  grant: () => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * One FIFO queue per session key inside this process: a waiting request sleeps on a promise and is
 * woken by the release, so there is no polling and no store traffic while requests queue here.
 */
export class KeyedQueue {
  readonly #queues = new Map<string, Waiter[]>();

  /** The release function when `key` is free now (taking it), else undefined; never waits. */
  tryAcquire(key: string): (() => void) | undefined {
    if (this.#queues.has(key)) return undefined;
    this.#queues.set(key, []);
    return this.#releaser(key);
  }

  /**
   * Resolves with a release function once every earlier acquirer of `key` has released; resolves
   * with undefined when that took longer than `waitMs` (the caller gives up).
   */
  acquire(key: string, waitMs: number): Promise<(() => void) | undefined> {
    const queue = this.#queues.get(key);
    if (queue === undefined) {
      this.#queues.set(key, []);
      return Promise.resolve(this.#releaser(key));
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        grant: () => resolve(this.#releaser(key)),
        timer: setTimeout(() => {
          const index = queue.indexOf(waiter);
          if (index !== -1) queue.splice(index, 1);
          resolve(undefined);
        }, waitMs),
      };
      queue.push(waiter);
    });
  }

  /** How many requests hold or wait for `key` (for tests and diagnostics). */
  depth(key: string): number {
    const queue = this.#queues.get(key);
    return queue === undefined ? 0 : queue.length + 1;
  }

  #releaser(key: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const queue = this.#queues.get(key);
      const next = queue?.shift();
      if (next === undefined) {
        this.#queues.delete(key);
        return;
      }
      clearTimeout(next.timer);
      next.grant();
    };
  }
}
