import type { Stats } from 'node:fs';
import { type Clock, systemClock } from '../../clock.js';

/**
 * A session file's modification time is its expiry clock, as in CodeIgniter: the file is live while
 * `mtime + lifetimeSeconds` (the driver's lifetime, from its context) is still ahead. The file holds
 * the payload only, so there is no room for a lifetime per session; a write or touch that names
 * another lifetime (a regenerated ID's short grace window, say) instead shifts the mtime it sets by
 * the difference — `mtime = now + (lifetime − context lifetime)`, in the past for a shorter lifetime
 * and in the future for a longer one — and the single rule above then makes that file live exactly
 * as long as the call said. Reads, peek and GC never need to know which lifetime a file was given.
 */
export class FileExpiry {
  readonly #clock: Clock;
  readonly #lifetimeMs: number;

  constructor(clock: Clock, lifetimeSeconds: number) {
    this.#clock = clock;
    this.#lifetimeMs = lifetimeSeconds * 1000;
  }

  /** A live session: a regular, non-empty file (an empty one is a lock placeholder) not yet expired. */
  isLive(stats: Stats): boolean {
    return stats.isFile() && stats.size > 0 && stats.mtimeMs + this.#lifetimeMs > this.#clock();
  }

  /** How long a live file has left to live, in ms. */
  remainingMs(stats: Stats): number {
    return stats.mtimeMs + this.#lifetimeMs - this.#clock();
  }

  /**
   * GC: idle for longer than `maxLifetimeSeconds`, or expired by its own lifetime. A file whose
   * lifetime is longer than the context's has an mtime in the future, and is neither.
   */
  isIdle(stats: Stats, maxLifetimeSeconds: number): boolean {
    const now = this.#clock();
    return (
      stats.mtimeMs <= now - maxLifetimeSeconds * 1000 || stats.mtimeMs + this.#lifetimeMs <= now
    );
  }

  /** The mtime that makes a file written or touched now live `lifetimeSeconds`. */
  mtimeFor(lifetimeSeconds: number): Date {
    return new Date(this.#clock() + lifetimeSeconds * 1000 - this.#lifetimeMs);
  }

  /**
   * The mtime to set on a file written now, or null when the kernel's own stamp is right (the system
   * clock, the context's lifetime): one system call less on every write.
   */
  mtimeForWrite(lifetimeSeconds: number): Date | null {
    return this.#clock === systemClock && lifetimeSeconds * 1000 === this.#lifetimeMs
      ? null
      : this.mtimeFor(lifetimeSeconds);
  }
}
