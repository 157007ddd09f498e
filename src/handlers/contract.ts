import type { Clock } from '../clock.js';
import type { SessionLogger } from '../log.js';

/** Which stored session a call is about. */
export interface SessionKey {
  /** A validated session ID (never raw cookie text). */
  readonly id: string;
  /** The client IP when `matchIP` is on, else null; part of the storage slot when set. */
  readonly ip: string | null;
}

/** What the manager tells a handler once, before the first request. */
export interface HandlerSettings {
  /** The `savePath` option as given (meaning depends on the driver), or '' when unset. */
  readonly savePath: string;
  readonly cookieName: string;
  readonly matchIP: boolean;
  /** Seconds a stored session lives after its last write or touch. */
  readonly lifetimeSeconds: number;
  /** How long read() may wait for another process's lock before SessionLockTimeoutError. */
  readonly lockWaitMs: number;
  /** Store-side lock lifetime: a crashed holder's lock frees itself after this; live holders renew it. */
  readonly lockTtlMs: number;
  /** A store call slower than this fails with SessionStoreError. */
  readonly ioTimeoutMs: number;
  /** A live client or pool (pg.Pool, mysql2 pool, Redis client, memcached client) or a URL, if given. */
  readonly connection: unknown;
  readonly clock: Clock;
  readonly logger: SessionLogger;
}

/** Proof that the caller holds a session's store lock; opaque to the manager. */
export interface SessionLock {
  readonly token: string;
}

export interface LockedRead {
  /** The stored payload, or null when nothing (or only an expired session) is stored under the key. */
  readonly data: string | null;
  readonly lock: SessionLock;
}

/**
 * The storage contract: CodeIgniter's SessionHandlerInterface in Promise form.
 *
 * The manager guarantees that inside one process only one request at a time works on a key (an
 * in-process FIFO queue), so a handler's lock only has to exclude other processes. Every lock taken
 * by read() is ended by exactly one of write(), updateTimestamp(), close() or destroy(), which lets a
 * store save and unlock in one round trip. Handlers whose store locks expire renew them until then.
 */
export interface SessionHandler {
  /** Short name used in errors and logs ("file", "redis"…). */
  readonly name: string;
  /** Connect and check the configuration; throws SessionConfigError for a bad savePath. */
  open(settings: HandlerSettings): Promise<void>;
  /** Take the store lock (waiting at most `waitMs`, then SessionLockTimeoutError) and read the payload. */
  read(key: SessionKey, waitMs: number): Promise<LockedRead>;
  /** Read without locking, for read-only requests. */
  peek(key: SessionKey): Promise<string | null>;
  /** Store the payload (lifetime restarts) and release the lock. */
  write(key: SessionKey, lock: SessionLock, data: string): Promise<void>;
  /** The payload is unchanged: restart its lifetime without rewriting it (write it if the record is gone), and release the lock. */
  updateTimestamp(key: SessionKey, lock: SessionLock, data: string): Promise<void>;
  /** Release the lock without saving. A key read as null and never written must leave nothing stored. */
  close(key: SessionKey, lock: SessionLock): Promise<void>;
  /** Delete the stored session; with a lock, also release it. */
  destroy(key: SessionKey, lock: SessionLock | null): Promise<void>;
  /** Does an unexpired session exist under the key (strict mode)? */
  validateId(key: SessionKey): Promise<boolean>;
  /** Delete sessions idle longer than `maxLifetimeSeconds`; returns how many (0 for stores with native expiry). */
  gc(maxLifetimeSeconds: number): Promise<number>;
  /** Close connections the handler opened itself. */
  shutdown(): Promise<void>;
}
