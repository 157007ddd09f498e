import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, rmdir, stat, utimes } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { SessionLockTimeoutError } from '../../errors.js';
import type { SessionLogger } from '../../log.js';
import { errorCode, ignoringMissing, withinIoTimeout } from './io-timeout.js';
import {
  FIRST_POLL_MS,
  type FileLockMechanism,
  LONGEST_POLL_MS,
  type LockedSessionFile,
} from './lock.js';

interface HeldDirectory {
  readonly lockPath: string;
  /** The inode of the directory we created, to tell it from one another process created after a takeover. */
  readonly ino: number;
}

/**
 * The fallback when the native flock addon is missing: `mkdir <session file>.lock` is atomic on
 * every local file system, so exactly one process creates it. The holder refreshes the directory's
 * mtime every lockTtl/3 (a heartbeat); a lock not refreshed for lockTtl is taken to belong to a
 * crashed process and is taken over. Recovery after a crash therefore takes up to lockTtl, where
 * flock recovers at once. A holder whose event loop stalls for longer than lockTtl can lose its
 * lock; the takeover moves the stale directory aside first and checks it moved the one it judged
 * stale, which narrows (but, without a compare-and-swap on directories, cannot close) the window
 * in which two waiters take over the same crashed lock at once.
 */
export class MkdirMechanism implements FileLockMechanism {
  readonly kind = 'mkdir' as const;
  readonly #lockTtlMs: number;
  readonly #ioTimeoutMs: number;
  readonly #logger: SessionLogger;
  readonly #held = new Map<LockedSessionFile, HeldDirectory>();
  #heartbeat: NodeJS.Timeout | undefined;
  #beating = false;

  constructor(options: { lockTtlMs: number; ioTimeoutMs: number; logger: SessionLogger }) {
    this.#lockTtlMs = options.lockTtlMs;
    this.#ioTimeoutMs = options.ioTimeoutMs;
    this.#logger = options.logger;
  }

  async acquire(path: string, waitMs: number): Promise<LockedSessionFile> {
    const deadline = performance.now() + waitMs;
    let pauseMs = FIRST_POLL_MS;
    for (;;) {
      const locked = await this.tryAcquire(path);
      if (locked !== null) return locked;
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) throw new SessionLockTimeoutError(waitMs, 'file');
      await sleep(Math.min(pauseMs, remainingMs));
      pauseMs = Math.min(pauseMs * 2, LONGEST_POLL_MS);
    }
  }

  async tryAcquire(path: string): Promise<LockedSessionFile | null> {
    const lockPath = `${path}.lock`;
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const ino = await this.#create(lockPath);
      if (ino !== null) {
        const locked: LockedSessionFile = { path, handle: null, stats: null };
        this.#held.set(locked, { lockPath, ino });
        this.#startHeartbeat();
        return locked;
      }
      if (!(await this.#removeIfStale(lockPath))) return null;
    }
    return null;
  }

  async release(locked: LockedSessionFile): Promise<void> {
    const held = this.#held.get(locked);
    if (held === undefined) return;
    this.#held.delete(locked);
    if (this.#held.size === 0) this.#stopHeartbeat();
    const current = await this.#io(ignoringMissing(stat(held.lockPath)), 'checking a session lock');
    if (current === undefined || current.ino !== held.ino) {
      this.#logger.warn(
        `keepsake: the lock ${held.lockPath} was taken over while this process held it (its heartbeat stopped for longer than lockTtl ${this.#lockTtlMs} ms: was the event loop blocked?).`,
      );
      return;
    }
    await this.#io(ignoringMissing(rmdir(held.lockPath)), 'releasing a session lock');
  }

  async removeLeftover(path: string): Promise<boolean> {
    if (path.endsWith('.lock')) return this.#removeIfStale(path);
    // A directory moved aside by a takeover that crashed before removing it.
    const info = await this.#io(ignoringMissing(stat(path)), 'checking a session lock');
    if (info === undefined || Date.now() - info.mtimeMs <= this.#lockTtlMs) return false;
    await this.#io(rm(path, { recursive: true, force: true }), 'removing a stale session lock');
    return true;
  }

  async shutdown(): Promise<void> {
    for (const locked of [...this.#held.keys()]) await this.release(locked).catch(() => {});
    this.#stopHeartbeat();
  }

  /** The new lock directory's inode, or null when it already exists. */
  async #create(lockPath: string): Promise<number | null> {
    try {
      await this.#io(mkdir(lockPath, { mode: 0o700 }), 'creating a session lock');
    } catch (error) {
      if (errorCode(error) === 'EEXIST') return null;
      throw error;
    }
    return (await this.#io(stat(lockPath), 'checking a session lock')).ino;
  }

  /** True when the lock is gone now (it was stale and we removed it, or its holder released it). */
  async #removeIfStale(lockPath: string): Promise<boolean> {
    const info = await this.#io(ignoringMissing(stat(lockPath)), 'checking a session lock');
    if (info === undefined) return true;
    if (Date.now() - info.mtimeMs <= this.#lockTtlMs) return false;
    const aside = `${lockPath}.${randomBytes(8).toString('hex')}.stale`;
    try {
      await this.#io(rename(lockPath, aside), 'taking over a stale session lock');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return true;
      throw error;
    }
    const moved = await this.#io(stat(aside), 'taking over a stale session lock');
    if (moved.ino !== info.ino) {
      // Another waiter took the stale lock over and re-created it between our stat and rename.
      await this.#io(rename(aside, lockPath), 'restoring a session lock').catch(() => {});
      return false;
    }
    await this.#io(rm(aside, { recursive: true, force: true }), 'removing a stale session lock');
    this.#logger.warn(
      `keepsake: took over the session lock ${lockPath}, not renewed for ${Math.round(Date.now() - info.mtimeMs)} ms (its process probably crashed).`,
    );
    return true;
  }

  #startHeartbeat(): void {
    if (this.#heartbeat !== undefined) return;
    this.#heartbeat = setInterval(
      () => this.#beat(),
      Math.max(10, Math.floor(this.#lockTtlMs / 3)),
    );
    this.#heartbeat.unref();
  }

  #stopHeartbeat(): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  #beat(): void {
    if (this.#beating) return;
    this.#beating = true;
    const now = new Date();
    const renewals = [...this.#held.values()].map(({ lockPath }) =>
      this.#io(utimes(lockPath, now, now), 'renewing a session lock').catch((error: unknown) => {
        this.#logger.warn(
          `keepsake: could not renew the session lock ${lockPath} (${error instanceof Error ? error.message : String(error)}).`,
        );
      }),
    );
    void Promise.all(renewals).finally(() => {
      this.#beating = false;
    });
  }

  #io<T>(operation: Promise<T>, what: string): Promise<T> {
    return withinIoTimeout(operation, this.#ioTimeoutMs, what);
  }
}
