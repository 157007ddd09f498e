import { randomBytes } from 'node:crypto';
import type { SessionKey, SessionStore, TouchOutcome } from './drivers/contract.js';
import {
  SessionError,
  SessionLockLostError,
  SessionLockTimeoutError,
  SessionStoreError,
} from './errors.js';
import type { SessionLogger } from './log.js';
import { StoreHealth } from './store-health.js';

/** Lock tokens only have to be unique, not secret: a random part per process and a counter. */
const TOKEN_PREFIX = randomBytes(9).toString('base64url');
let tokenCounter = 0;

function newToken(): string {
  tokenCounter += 1;
  return `${TOKEN_PREFIX}${tokenCounter.toString(36)}`;
}

/** Waits between lock attempts grow from FIRST to LONGEST, so a freed lock is seen quickly. */
const FIRST_RETRY_MS = 2;
const LONGEST_RETRY_MS = 100;
/** The first release of a lock an uncertain attempt may have taken; later ones wait twice as long. */
const SWEEP_FIRST_MS = 250;
/** A failed unlock is tried once more after this long. */
const UNLOCK_RETRY_MS = 100;
/** Transient store errors (deadlocks…) are retried at most this many times, within ioTimeout. */
const TRANSIENT_RETRIES = 4;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class IoTimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ioTimeout (${ms} ms)`);
  }
}

/** A session lock this process holds. */
export interface HeldLock {
  readonly key: SessionKey;
  readonly token: string;
  /** A live session was read under this lock (else releasing it discards what the lock left behind). */
  readonly found: boolean;
  /** performance.now() after which the store may give the lock to someone else (Infinity: never). */
  leaseUntil: number;
  renewal: NodeJS.Timeout | undefined;
  /** A write, touch, destroy or release has begun: no more renewals, no second ending. */
  ended: boolean;
}

export interface LockProtocolOptions {
  /** The driver's name, for errors and logs. */
  readonly driver: string;
  readonly lockTtlMs: number;
  readonly ioTimeoutMs: number;
  readonly logger: SessionLogger;
  /** Where store failures are reported (shared with whoever opened the store); one of its own otherwise. */
  readonly health?: StoreHealth;
}

/**
 * The lock protocol, once for every driver: a store offers primitives (take-and-read,
 * write-and-unlock…), and this module owns the tokens, the wait with backoff up to `lockWait`, the
 * renewal of expiring locks while a request runs, the IO timeout, retries of transient errors, and
 * releasing whatever was taken after any failure — including a lock attempt that answered only
 * after the core had given up on it.
 */
export class LockProtocol {
  readonly #store: SessionStore;
  readonly #options: LockProtocolOptions;
  readonly #health: StoreHealth;

  constructor(store: SessionStore, options: LockProtocolOptions) {
    this.#store = store;
    this.#options = options;
    this.#health = options.health ?? new StoreHealth(options.driver, options.logger);
  }

  get store(): SessionStore {
    return this.#store;
  }

  /**
   * Takes the session's lock, waiting at most `waitMs` (then SessionLockTimeoutError), and reads it.
   * A store failure or a call slower than ioTimeout is a SessionStoreError.
   */
  async acquire(
    key: SessionKey,
    waitMs: number,
  ): Promise<{
    lock: HeldLock;
    payload: string | null;
    unreadable: string | undefined;
    expiresInMs: number | undefined;
  }> {
    const token = newToken();
    const started = performance.now();
    let retryMs = FIRST_RETRY_MS;
    for (;;) {
      const sentAt = performance.now();
      const attempt = this.#store.lockAndRead(key, token);
      let outcome: Awaited<typeof attempt>;
      try {
        outcome = await this.#bounded(attempt);
        this.#health.succeeded();
      } catch (error) {
        // Given up on, it may still take the lock when the store wakes: give that lock back then.
        // A client that gave up too (its own query timeout) cannot say whether the server still
        // runs the statement later, so its token is released a few more times until the lock it
        // may have taken would have expired anyway.
        attempt.then(
          (late) => {
            if (late.locked) this.#releaseLate(key, token, late.payload === null);
          },
          () => this.#sweep(key, token, sentAt),
        );
        // A deadlock or lock-wait timeout on a lock attempt only means "not now": the wait is
        // bounded by lockWait like any other.
        if (!this.#isTransient(error)) throw this.#storeError('lock and read', error);
        outcome = { locked: false };
      }
      if (outcome.locked) {
        const found = outcome.payload !== null && outcome.unreadable === undefined;
        const lock: HeldLock = {
          key,
          token,
          found,
          leaseUntil:
            this.#store.renewLock === undefined ? Number.POSITIVE_INFINITY : sentAt + this.#ttl(),
          renewal: undefined,
          ended: false,
        };
        this.#scheduleRenewal(lock);
        return {
          lock,
          payload: outcome.unreadable === undefined ? outcome.payload : null,
          unreadable: outcome.unreadable,
          expiresInMs: outcome.expiresInMs,
        };
      }
      const remainingMs = waitMs - (performance.now() - started);
      if (remainingMs <= 0) throw new SessionLockTimeoutError(waitMs, this.#options.driver);
      if (this.#store.waitForUnlock !== undefined) {
        await this.#bounded(this.#store.waitForUnlock(key, remainingMs), remainingMs).catch(
          (error: unknown) => {
            if (!(error instanceof IoTimeoutError)) throw this.#storeError('lock wait', error);
          },
        );
      } else {
        await sleep(Math.min(retryMs, remainingMs));
        retryMs = Math.min(retryMs * 2, LONGEST_RETRY_MS);
      }
    }
  }

  /** Stores the payload and releases the lock. On any failure the lock is released (once the call settles) and the old data stays. */
  async write(lock: HeldLock, payload: string, lifetimeSeconds: number): Promise<void> {
    this.#end(lock, 'write');
    const written = await this.#finishing(lock, 'write', () =>
      this.#store.writeAndUnlock(lock.key, lock.token, payload, lifetimeSeconds),
    );
    if (!written) throw this.#lockLost('write');
  }

  /** Restarts the lifetime without rewriting (writes `payload` if the record is gone) and releases the lock. */
  async touch(lock: HeldLock, payload: string, lifetimeSeconds: number): Promise<void> {
    this.#end(lock, 'touch');
    const outcome: TouchOutcome = await this.#finishing(lock, 'touch', () =>
      this.#store.touchAndUnlock(lock.key, lock.token, lifetimeSeconds),
    );
    if (outcome === 'fenced') throw this.#lockLost('touch');
    if (outcome === 'missing') {
      const written = await this.#finishing(lock, 'write', () =>
        this.#store.writeAndUnlock(lock.key, lock.token, payload, lifetimeSeconds),
      );
      if (!written) throw this.#lockLost('write');
    }
  }

  /** Deletes the stored session and releases the lock; a lock lost meanwhile deletes nothing. */
  async destroy(lock: HeldLock): Promise<void> {
    this.#end(lock, 'destroy');
    const destroyed = await this.#finishing(lock, 'destroy', () =>
      this.#store.destroyAndUnlock(lock.key, lock.token),
    );
    if (!destroyed) throw this.#lockLost('destroy');
  }

  /** Releases the lock without saving; discards what it left behind when nothing live was read. */
  async release(lock: HeldLock): Promise<void> {
    if (lock.ended) return;
    this.#end(lock, 'release');
    const call = this.#store.unlock(lock.key, lock.token, !lock.found);
    try {
      await this.#bounded(call);
    } catch (error) {
      // Once more, shortly after: a lock that never expires (a file lock) would otherwise stay.
      const retry = setTimeout(() => {
        call.then(
          () => {},
          () => this.#releaseLate(lock.key, lock.token, !lock.found),
        );
      }, UNLOCK_RETRY_MS);
      retry.unref();
      throw this.#storeError('unlock', error);
    }
  }

  /** Releases in the background, logging a failure; for paths that are already failing. */
  abandon(lock: HeldLock): void {
    this.release(lock).catch((error: unknown) =>
      this.#options.logger.error(
        `keepsake: releasing the lock of session ${lock.key.id.slice(0, 8)}… failed; it frees itself within lockTtl`,
        error,
      ),
    );
  }

  /**
   * Ends a session now, whoever holds its lock, so that a request holding it cannot save it back
   * (see SessionStore.revoke). A store without that primitive has the session's lock taken as a
   * request takes it, waiting at most `waitMs`, and the session destroyed.
   */
  async revoke(key: SessionKey, waitMs: number): Promise<void> {
    const revoke = this.#store.revoke?.bind(this.#store);
    if (revoke === undefined) {
      const { lock } = await this.acquire(key, waitMs);
      await (lock.found ? this.destroy(lock) : this.release(lock));
      return;
    }
    for (let failures = 0; ; failures += 1) {
      try {
        await this.#bounded(revoke(key));
        this.#health.succeeded();
        return;
      } catch (error) {
        if (!this.#isTransient(error) || failures >= TRANSIENT_RETRIES)
          throw this.#storeError('revoke', error);
        await sleep(FIRST_RETRY_MS * 2 ** failures);
      }
    }
  }

  /** Reads without a lock. */
  async peek(key: SessionKey): Promise<string | null> {
    try {
      const payload = await this.#bounded(this.#store.peek(key));
      this.#health.succeeded();
      return payload;
    } catch (error) {
      throw this.#storeError('read', error);
    }
  }

  /** Deletes expired sessions; 0 for stores that expire records themselves. */
  async gc(maxLifetimeSeconds: number): Promise<number> {
    const gc = this.#store.gc?.bind(this.#store);
    if (gc === undefined) return 0;
    for (let failures = 0; ; failures += 1) {
      try {
        // GC may scan a whole table or directory: it is bounded by nothing but itself.
        return await gc(maxLifetimeSeconds);
      } catch (error) {
        if (!this.#isTransient(error) || failures >= TRANSIENT_RETRIES)
          throw this.#storeError('gc', error);
        await sleep(FIRST_RETRY_MS * 2 ** failures);
      }
    }
  }

  async close(): Promise<void> {
    await this.#store.close();
  }

  /** No renewal once the request ends its lock; a lease already over means another may hold it. */
  #end(lock: HeldLock, operation: string): void {
    if (lock.ended) {
      throw new Error(`keepsake: the lock of this session was already released (${operation}).`);
    }
    lock.ended = true;
    clearTimeout(lock.renewal);
    if (performance.now() >= lock.leaseUntil) {
      this.#abandonAfterLoss(lock);
      throw this.#lockLost(operation);
    }
  }

  /** The lease ran out: the store may have given the lock away, so only its own token check may free it. */
  #abandonAfterLoss(lock: HeldLock): void {
    this.#store.unlock(lock.key, lock.token, false).catch(() => {});
  }

  /**
   * Runs a call that ends the lock: bounded by ioTimeout, transient errors retried. When it fails
   * or is given up on, the lock is released — but only after the call has settled, so a write that
   * lands late can never land after another request took the lock.
   */
  async #finishing<Result>(
    lock: HeldLock,
    operation: string,
    run: () => Promise<Result>,
  ): Promise<Result> {
    const deadline = performance.now() + this.#options.ioTimeoutMs;
    for (let failures = 0; ; failures += 1) {
      const call = run();
      try {
        const result = await this.#bounded(call, deadline - performance.now());
        this.#health.succeeded();
        return result;
      } catch (error) {
        const retry =
          !(error instanceof IoTimeoutError) &&
          this.#isTransient(error) &&
          failures < TRANSIENT_RETRIES &&
          performance.now() < deadline;
        if (retry) {
          await sleep(FIRST_RETRY_MS * 2 ** failures);
          continue;
        }
        call.then(
          () => {},
          () => this.#releaseLate(lock.key, lock.token, !lock.found),
        );
        throw this.#storeError(operation, error);
      }
    }
  }

  /** Releases `token`'s lock, if it ever was taken, at growing intervals until its lease is over. */
  #sweep(key: SessionKey, token: string, sentAt: number): void {
    let delayMs = SWEEP_FIRST_MS;
    const next = () => {
      if (performance.now() > sentAt + this.#ttl()) return;
      const timer = setTimeout(() => {
        this.#bounded(this.#store.unlock(key, token, true))
          .catch(() => {})
          .finally(next);
      }, delayMs);
      timer.unref();
      delayMs *= 2;
    };
    next();
  }

  #releaseLate(key: SessionKey, token: string, discard: boolean): void {
    this.#store
      .unlock(key, token, discard)
      .catch((error: unknown) =>
        this.#options.logger.debug(
          `keepsake: releasing a lock of session ${key.id.slice(0, 8)}… after a failure failed too (${error instanceof Error ? error.message : String(error)}); it frees itself within lockTtl`,
        ),
      );
  }

  #scheduleRenewal(lock: HeldLock): void {
    const renewLock = this.#store.renewLock?.bind(this.#store);
    if (renewLock === undefined) return;
    const everyMs = Math.max(10, Math.floor(this.#ttl() / 3));
    lock.renewal = setTimeout(() => {
      if (lock.ended) return;
      const sentAt = performance.now();
      this.#bounded(renewLock(lock.key, lock.token)).then(
        (renewed) => {
          if (lock.ended) return;
          if (renewed) {
            lock.leaseUntil = sentAt + this.#ttl();
            this.#scheduleRenewal(lock);
            return;
          }
          lock.leaseUntil = 0;
          this.#options.logger.warn(
            `keepsake: the lock of session ${lock.key.id.slice(0, 8)}… expired while its request was still running ` +
              `(the process stalled for longer than lockTtl, ${this.#ttl()} ms?); this request's changes will not be saved.`,
          );
        },
        (error: unknown) => {
          if (lock.ended) return;
          this.#options.logger.warn(
            `keepsake: renewing the lock of session ${lock.key.id.slice(0, 8)}… failed (${error instanceof Error ? error.message : String(error)}); retrying`,
          );
          this.#scheduleRenewal(lock);
        },
      );
    }, everyMs);
    lock.renewal.unref();
  }

  #ttl(): number {
    return this.#options.lockTtlMs;
  }

  #isTransient(error: unknown): boolean {
    return this.#store.isTransient?.(error) === true;
  }

  #lockLost(operation: string): SessionLockLostError {
    return new SessionLockLostError(this.#options.driver, operation, this.#ttl());
  }

  /** The error a request fails with (503); a store failure is also reported to the operator. */
  #storeError(operation: string, error: unknown): SessionError {
    if (error instanceof SessionError) return error;
    this.#health.failed(operation, error);
    return new SessionStoreError(this.#options.driver, operation, error);
  }

  /** Settles like `call`, or rejects with IoTimeoutError after `ms` (ioTimeout by default). */
  #bounded<Result>(call: Promise<Result>, ms = this.#options.ioTimeoutMs): Promise<Result> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new IoTimeoutError(Math.round(ms))), Math.max(0, ms));
    });
    return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
  }
}
