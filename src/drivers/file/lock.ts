import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/** Which cross-process lock the file driver uses. */
export type FileLockKind = 'flock' | 'mkdir';

/** One session file locked by this process. */
export interface LockedSessionFile {
  readonly path: string;
  /**
   * flock: the open, locked file, verified to be the one at `path`; reading and touching through
   * it saves an open(). mkdir: null (the lock is a separate directory; the file is used by path).
   */
  readonly handle: FileHandle | null;
  /** flock: the locked file's stat at lock time; null for mkdir. */
  readonly stats: Stats | null;
}

/**
 * How the file driver excludes other processes from a session file. Every method is one attempt:
 * waiting, backoff and timeouts belong to the core's lock protocol.
 */
export interface FileLockMechanism {
  readonly kind: FileLockKind;
  /**
   * Takes the lock if it is free now (or its holder's lock expired); null when another holds it.
   * flock opens the session file to lock it: with `create` (a request) a missing file is created
   * empty, as a lock placeholder; without it (GC) a missing file is simply not locked.
   */
  tryLock(path: string, create: boolean): Promise<LockedSessionFile | null>;
  /** False once another process took the lock over; a lock that cannot expire is always still held. */
  stillHeld(locked: LockedSessionFile): Promise<boolean>;
  /**
   * Only for a lock that expires unless renewed (mkdir): restarts its lifetime; false when it was
   * taken over meanwhile.
   */
  renew?(locked: LockedSessionFile): Promise<boolean>;
  /**
   * For a revocation: takes the lock even from a holder, which is fenced from then on (its
   * `stillHeld` answers false), and answers it; null where a lock cannot be taken from its holder
   * (flock) or there is no file to lock: the caller then fences the holder by unlinking the file.
   */
  seize(path: string): Promise<LockedSessionFile | null>;
  /** Releases the lock, unless another process has taken it over meanwhile. */
  release(locked: LockedSessionFile): Promise<void>;
  /** GC: removes a leftover of this mechanism (a crashed holder's lock directory) if stale. */
  removeLeftover(path: string): Promise<boolean>;
}
