import type { Clock } from '../clock.js';
import type { SessionLogger } from '../log.js';

/** Which stored session a call is about. */
export interface SessionKey {
  /** A validated session ID (never raw cookie text). */
  readonly id: string;
  /** The client IP when `matchIP` is on, else null; part of the storage slot when set. */
  readonly ip: string | null;
  /**
   * The client IP whether or not `matchIP` is on, never part of the storage slot: for a store that
   * records it beside the session (CodeIgniter's database table). Absent when the caller has none.
   */
  readonly clientIp?: string;
}

/** What the core tells a driver when it opens it. */
export interface DriverContext {
  readonly cookieName: string;
  readonly matchIP: boolean;
  /** Seconds a session lives after its last write or touch, unless a call names another lifetime. */
  readonly lifetimeSeconds: number;
  /**
   * How long a lock lives in the store unless renewed. A store whose locks expire must not let
   * anyone else take a lock sooner than this after the attempt that took it was sent.
   */
  readonly lockTtlMs: number;
  /** The core bounds every call by this; a driver may pass it to its client as well. */
  readonly ioTimeoutMs: number;
  /**
   * Milliseconds since the epoch: every decision about a session's expiry uses it (tests move it).
   * Lock expiry does not: locks are shared with other processes, so they follow real time.
   */
  readonly clock: Clock;
  readonly logger: SessionLogger;
}

/** What one lock attempt found. */
export type LockAttempt =
  | { readonly locked: false }
  | {
      readonly locked: true;
      /** The stored payload; null when no live session is stored under the key. */
      readonly payload: string | null;
      /**
       * How long the stored session has left to live, in ms, when the store knows it. keepsake
       * then refreshes an unchanged session's expiry only once `touchAfter` of its lifetime has
       * passed since its last write or touch (else on every request).
       */
      readonly expiresInMs?: number;
      /**
       * Set when a record exists but cannot be a payload (a Redis key of another type, bytes that
       * are not UTF-8…): the core warns with this text and replaces the record.
       */
      readonly unreadable?: string;
    };

/** What a touch did: the lifetime restarted; the record is gone (the lock is kept); or the lock was not ours. */
export type TouchOutcome = 'touched' | 'missing' | 'fenced';

/**
 * The store primitives of a driver. The core owns everything else: lock tokens, waiting with
 * backoff, renewal while a request runs, the IO timeout, retries of transient errors, and releasing
 * what was taken after any failure.
 *
 * Every call names the lock's `token`. A call that changes or releases a session must do nothing,
 * and answer `false` (or 'fenced'), when the lock is no longer held by that token: then a request
 * whose lock expired while it stalled can never overwrite, revive or delete a session that another
 * request has taken over since.
 */
export interface SessionStore {
  /**
   * Takes the session's lock for `token` if nobody holds it (or its holder's lock expired), and
   * reads the session. If it fails after taking the lock, it releases the lock before it rejects:
   * the core releases only what an answer told it was taken.
   */
  lockAndRead(key: SessionKey, token: string): Promise<LockAttempt>;
  /**
   * Extends the lock by `lockTtlMs`; false when it is no longer held by `token`. Present only on
   * stores whose locks expire: the core calls it every third of the TTL while a request runs.
   * Without it, the store's locks last until released (a file lock, a connection-held lock).
   */
  renewLock?(key: SessionKey, token: string): Promise<boolean>;
  /** Stores the payload for `lifetimeSeconds` and releases the lock; false when the lock is not `token`'s. */
  writeAndUnlock(
    key: SessionKey,
    token: string,
    payload: string,
    lifetimeSeconds: number,
  ): Promise<boolean>;
  /**
   * Restarts the stored session's lifetime without rewriting it and releases the lock. When no
   * record is stored any more, answers 'missing' and keeps the lock: the core then writes the payload.
   */
  touchAndUnlock(key: SessionKey, token: string, lifetimeSeconds: number): Promise<TouchOutcome>;
  /** Deletes the stored session and releases the lock; false when the lock is not `token`'s. */
  destroyAndUnlock(key: SessionKey, token: string): Promise<boolean>;
  /**
   * Releases the lock if it is `token`'s. With `discard`, the lock was taken where no live session
   * was stored: also remove what the lock left behind (a placeholder, an expired record), but
   * never a live session.
   */
  unlock(key: SessionKey, token: string, discard: boolean): Promise<void>;
  /**
   * Ends the session under `key` now, whether or not a request holds its lock ("log out
   * everywhere"): what is stored is deleted, or replaced by a marker that reads as no session. A
   * request holding the lock at this moment, with or without a stored session (a new or
   * regenerated session's lock), can no longer write, touch or destroy it: those calls answer
   * false or 'fenced', and its unlock brings nothing back. The next holder of the lock reads no
   * session and may store a new one under the key.
   *
   * Without it, `manager.revoke()` takes the session's lock as a request does (so it waits for a
   * request in flight, up to `lockWait`), then destroys it.
   */
  revoke?(key: SessionKey): Promise<void>;
  /** Reads without locking, for read-only requests; null when no live session is stored. */
  peek(key: SessionKey): Promise<string | null>;
  /**
   * Deletes sessions idle longer than `maxLifetimeSeconds` and answers how many. Stores that expire
   * records by themselves (a TTL) leave it out.
   */
  gc?(maxLifetimeSeconds: number): Promise<number>;
  /**
   * Waits until the session's lock may be free, at most `maxWaitMs`, instead of the core's backoff
   * sleep; for stores that can block or be notified natively.
   */
  waitForUnlock?(key: SessionKey, maxWaitMs: number): Promise<void>;
  /** Whether an error is worth retrying at once (a deadlock, a lock-wait timeout, a serialization failure). */
  isTransient?(error: unknown): boolean;
  /** Closes what the driver opened itself (never a client the application passed in). */
  close(): Promise<void>;
}

/** A driver: how to open its store. Built by a factory such as `redis({ client })`, or your own. */
export interface SessionDriver {
  /** Short name used in errors and logs ("file", "redis"…). */
  readonly name: string;
  /**
   * The largest payload (bytes) this store serves back well within the IO timeout; the core
   * refuses to store a bigger one unless the `maxPayloadBytes` option says otherwise.
   */
  readonly maxPayloadBytes?: number;
  /** Connects and checks what needs I/O (a table, a directory); throws SessionConfigError for bad settings. */
  open(context: DriverContext): Promise<SessionStore>;
}
