import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/** Which cross-process lock the file driver uses. */
export type FileLockKind = 'flock' | 'mkdir';

/** One session file locked by this process. */
export interface LockedSessionFile {
  readonly path: string;
  /**
   * flock: the open, locked file, verified to be the one at `path`; reading through it saves an
   * open(). mkdir: null (the lock is a separate directory; the data file is opened by path).
   */
  readonly handle: FileHandle | null;
  /** flock: the locked file's stat at lock time; null for mkdir. */
  readonly stats: Stats | null;
}

/** How the file driver excludes other processes from a session file. */
export interface FileLockMechanism {
  readonly kind: FileLockKind;
  /** Waits (polling with backoff) at most `waitMs` for the lock, then SessionLockTimeoutError. */
  acquire(path: string, waitMs: number): Promise<LockedSessionFile>;
  /** Takes the lock only if it is free right now and the file exists (for GC); else null. */
  tryAcquire(path: string): Promise<LockedSessionFile | null>;
  release(locked: LockedSessionFile): Promise<void>;
  /** GC: removes a leftover of this mechanism (a crashed holder's lock directory) if stale. */
  removeLeftover(path: string): Promise<boolean>;
  /** Releases everything still held and stops timers. */
  shutdown(): Promise<void>;
}

/** Timing of the lock polls: waits grow from FIRST to LONGEST so a free lock is seen quickly. */
export const FIRST_POLL_MS = 2;
export const LONGEST_POLL_MS = 100;
