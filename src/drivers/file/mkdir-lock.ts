import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { type FileHandle, mkdir, open, rename, rm, rmdir, stat, utimes } from 'node:fs/promises';
import type { SessionLogger } from '../../log.js';
import { errorCode, ignoringMissing } from './io-timeout.js';
import type { FileLockMechanism, LockedSessionFile } from './lock.js';

interface HeldDirectory {
  readonly lockPath: string;
  /**
   * The lock directory we created, held open: a file system reuses a freed inode number at once
   * (ext4 does, every time), so only while this handle pins our directory's inode can no other
   * directory — one that a takeover created in its place — have the same number. Null where a
   * directory cannot be opened (Windows, whose NTFS file IDs change on reuse anyway).
   */
  readonly pin: FileHandle | null;
  readonly ino: number;
  readonly dev: number;
}

/**
 * A lock directory's mtime comes from the kernel's coarse clock, which lags the time Date.now()
 * reads by up to one tick (10 ms at HZ=100): without this margin a lock could be judged expired a
 * few milliseconds before lockTtl has passed since the attempt that took it was sent.
 */
const COARSE_CLOCK_MARGIN_MS = 20;

/** How often a revocation moves a held lock directory aside before it gives up (requests keep retaking it). */
const SEIZE_ATTEMPTS = 5;

/** Errors of opening a directory on platforms that cannot (Windows); the lock then goes unpinned. */
const CANNOT_OPEN_DIRECTORIES = new Set(['EISDIR', 'EPERM', 'EACCES']);

/**
 * The fallback when the native flock addon is missing: `mkdir <session file>.lock` is atomic on
 * every local file system, so exactly one process creates it. The lock expires: one whose mtime has
 * not been refreshed (`renew`, which the core calls every lockTtl/3) for lockTtl is taken to belong
 * to a crashed process and is taken over. Recovery after a crash therefore takes up to lockTtl,
 * where flock recovers at once.
 *
 * A holder whose event loop stalls for longer than lockTtl can lose its lock. `stillHeld` tells it
 * so — the directory at the path is no longer the one it created and holds open — and the store
 * then refuses its write, touch or destroy. A takeover moves the stale directory aside first and
 * checks that it moved the one it judged stale (same inode, same mtime: not renewed meanwhile, not
 * another taker's fresh lock), else puts it back. Directories have no compare-and-swap, so each of
 * these checks leaves a window of one file operation: a process that stalls for longer than
 * lockTtl exactly there may act once on a lock it no longer holds.
 */
export class MkdirMechanism implements FileLockMechanism {
  readonly kind = 'mkdir' as const;
  readonly #lockTtlMs: number;
  readonly #logger: SessionLogger;
  readonly #directories = new WeakMap<LockedSessionFile, HeldDirectory>();

  constructor(lockTtlMs: number, logger: SessionLogger) {
    this.#lockTtlMs = lockTtlMs;
    this.#logger = logger;
  }

  async tryLock(path: string): Promise<LockedSessionFile | null> {
    const lockPath = `${path}.lock`;
    // A second try only right after removing a stale lock, to take its place.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const held = await this.#create(lockPath);
      if (held !== null) {
        const locked: LockedSessionFile = { path, handle: null, stats: null };
        this.#directories.set(locked, held);
        return locked;
      }
      if (!(await this.#removeIfStale(lockPath))) return null;
    }
    return null;
  }

  /**
   * Takes the lock whoever holds it: a held lock directory is moved aside and removed, as an
   * expired one is taken over, so its holder's `stillHeld` answers false from then on.
   */
  async seize(path: string): Promise<LockedSessionFile | null> {
    const lockPath = `${path}.lock`;
    for (let attempt = 0; attempt < SEIZE_ATTEMPTS; attempt += 1) {
      const held = await this.#create(lockPath);
      if (held !== null) {
        const locked: LockedSessionFile = { path, handle: null, stats: null };
        this.#directories.set(locked, held);
        return locked;
      }
      const aside = `${lockPath}.${randomBytes(8).toString('hex')}.stale`;
      try {
        await rename(lockPath, aside);
      } catch (error) {
        if (errorCode(error) !== 'ENOENT') throw error;
        continue;
      }
      await rm(aside, { recursive: true, force: true });
    }
    throw new Error(
      `keepsake: could not take the lock ${lockPath} to revoke its session: other requests kept taking it`,
    );
  }

  async stillHeld(locked: LockedSessionFile): Promise<boolean> {
    const held = this.#directories.get(locked);
    return held !== undefined && this.#isOurs(held, await ignoringMissing(stat(held.lockPath)));
  }

  async renew(locked: LockedSessionFile): Promise<boolean> {
    const held = this.#directories.get(locked);
    if (held === undefined) return false;
    const now = new Date();
    // Through the pin, the renewal can only ever reach our own directory, wherever it is now.
    if (held.pin !== null) await held.pin.utimes(now, now);
    else if (!(await this.stillHeld(locked))) return false;
    else await ignoringMissing(utimes(held.lockPath, now, now));
    return this.stillHeld(locked);
  }

  async release(locked: LockedSessionFile): Promise<void> {
    const held = this.#directories.get(locked);
    if (held === undefined) return;
    this.#directories.delete(locked);
    try {
      if (!this.#isOurs(held, await ignoringMissing(stat(held.lockPath)))) {
        // The core has already reported the lost lock (its renewal failed, or its lease ran out).
        this.#logger.debug(
          `keepsake: the lock ${held.lockPath} was taken over while this process held it; left to its new holder.`,
        );
        return;
      }
      await ignoringMissing(rmdir(held.lockPath));
    } finally {
      await held.pin?.close();
    }
  }

  async removeLeftover(path: string): Promise<boolean> {
    if (path.endsWith('.lock')) return this.#removeIfStale(path);
    // A directory moved aside by a takeover that crashed before removing it.
    const info = await ignoringMissing(stat(path));
    if (info === undefined || !this.#isStale(info)) return false;
    await rm(path, { recursive: true, force: true });
    return true;
  }

  /** The new lock directory, opened; null when it already exists. */
  async #create(lockPath: string): Promise<HeldDirectory | null> {
    try {
      await mkdir(lockPath, { mode: 0o700 });
    } catch (error) {
      if (errorCode(error) === 'EEXIST') return null;
      throw error;
    }
    let pin: FileHandle | null = null;
    try {
      pin = await open(lockPath, 'r');
    } catch (error) {
      const code = errorCode(error);
      if (code === undefined || !CANNOT_OPEN_DIRECTORIES.has(code)) {
        await rmdir(lockPath).catch(() => {});
        throw error;
      }
    }
    try {
      const { ino, dev } = await (pin === null ? stat(lockPath) : pin.stat());
      return { lockPath, pin, ino, dev };
    } catch (error) {
      await pin?.close().catch(() => {});
      await rmdir(lockPath).catch(() => {});
      throw error;
    }
  }

  #isOurs(held: HeldDirectory, current: Stats | undefined): boolean {
    return current !== undefined && current.ino === held.ino && current.dev === held.dev;
  }

  #isStale(info: Stats): boolean {
    return Date.now() - info.mtimeMs > this.#lockTtlMs + COARSE_CLOCK_MARGIN_MS;
  }

  /** True when the lock is gone now (it was stale and we removed it, or its holder released it). */
  async #removeIfStale(lockPath: string): Promise<boolean> {
    const judged = await ignoringMissing(stat(lockPath));
    if (judged === undefined) return true;
    if (!this.#isStale(judged)) return false;
    const aside = `${lockPath}.${randomBytes(8).toString('hex')}.stale`;
    try {
      await rename(lockPath, aside);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return true;
      throw error;
    }
    // A rename within one directory keeps the moved directory's mtime: a different one means it
    // was renewed, or is another taker's new lock, since we looked.
    const moved = await stat(aside);
    if (moved.ino !== judged.ino || moved.dev !== judged.dev || moved.mtimeMs !== judged.mtimeMs) {
      await rename(aside, lockPath).catch(() => {});
      return false;
    }
    await rm(aside, { recursive: true, force: true });
    this.#logger.warn(
      `keepsake: took over the session lock ${lockPath}, not renewed for ${Math.round(Date.now() - judged.mtimeMs)} ms (its process probably crashed).`,
    );
    return true;
  }
}
