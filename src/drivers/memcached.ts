import { randomBytes } from 'node:crypto';
import type { ResolvedConfig } from '../config.js';
import { SessionConfigError, SessionLockTimeoutError, SessionStoreError } from '../errors.js';
import type {
  HandlerSettings,
  LockedRead,
  SessionHandler,
  SessionKey,
  SessionLock,
} from './contract.js';
import {
  createMemcachedClient,
  isMemcachedClient,
  type MemcachedClient,
  type RingClient,
} from './memcached/client.js';
import { parseMemcachedSavePath } from './memcached/save-path.js';

export type { MemcachedClient } from './memcached/client.js';

/** memcached reads an exptime above 30 days as an absolute Unix time. */
const RELATIVE_EXPTIME_LIMIT = 30 * 24 * 3600;
/** memcached's key limit; longer keys are refused with CLIENT_ERROR. */
const MAX_KEY_BYTES = 250;
/** The longest `<ip>:` matchIP can add (an IPv4-mapped IPv6 address). */
const LONGEST_IP_PART = 46;
const SESSION_ID_LENGTH = 32;
/** Lock tokens: unique per process (random) and per lock (a counter), cheaper than random bytes each. */
const TOKEN_PREFIX = randomBytes(9).toString('base64url');
let tokenCounter = 0;
const FIRST_RETRY_MS = 2;
const LONGEST_RETRY_MS = 100;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A lock this process holds: what releasing and renewing it needs. */
interface HeldLock {
  readonly lockKey: string;
  /** The lock item's CAS with the built-in client (meta commands), else null. */
  readonly cas: string | null;
  /** performance.now() when the store last confirmed the lock (add or renewal sent then). */
  confirmedAt: number;
  /** A renewal found the lock gone (evicted, or expired during a stall). */
  lost: boolean;
  readonly renewal: NodeJS.Timeout;
}

/**
 * Sessions in memcached, on one server or a weighted pool. The lock is an atomic `add` of a unique
 * token under `<data key>:lock`, never get-then-set; it lives a few seconds and is renewed while the
 * request runs, so a crashed process's lock frees itself. Data and lock share a `{hash tag}` (the
 * session ID), which the built-in client routes by, so both land on the same server. Expiry is
 * memcached's own.
 *
 * With the built-in client an uncontended request costs two round trips: lock + read, then save +
 * unlock, each pair sent in one write; the unlock is a meta delete conditional on the lock's CAS, so
 * it can never remove a lock another request took over. Another client gets the portable path:
 * the same commands one by one, and get + compare + delete to unlock.
 */
export class MemcachedHandler implements SessionHandler {
  readonly name = 'memcached';
  #client: MemcachedClient | undefined;
  /** The built-in client, when in use: it is closed on shutdown and has the pipelined commands. */
  #ring: RingClient | undefined;
  #settings: HandlerSettings | undefined;
  #prefix = '';
  /** Locks held now, by token. */
  readonly #held = new Map<string, HeldLock>();

  async open(settings: HandlerSettings): Promise<void> {
    this.#settings = settings;
    this.#prefix = `${settings.cookieName}:`;
    const longestKey = `${this.#prefix}${'x'.repeat(LONGEST_IP_PART)}{${'x'.repeat(SESSION_ID_LENGTH)}}:lock`;
    if (Buffer.byteLength(longestKey) > MAX_KEY_BYTES) {
      throw new SessionConfigError(
        'cookieName',
        `it names the memcached keys, which would exceed memcached's ${MAX_KEY_BYTES}-byte key limit; use a shorter cookie name.`,
      );
    }
    if (settings.connection !== undefined && settings.connection !== null) {
      if (!isMemcachedClient(settings.connection)) {
        throw new SessionConfigError(
          'connection',
          'expected a memcached client with get, set, add, touch and delete methods (e.g. a `memcache` Memcache instance), or leave it out and list the servers in savePath.',
        );
      }
      this.#client = settings.connection;
      return;
    }
    const servers = parseMemcachedSavePath(settings.savePath);
    this.#ring = await createMemcachedClient(servers, settings.ioTimeoutMs);
    this.#client = this.#ring;
  }

  async read(key: SessionKey, waitMs: number): Promise<LockedRead> {
    const client = this.#requireClient();
    const ring = this.#ring;
    const dataKey = this.#dataKey(key);
    const lockKey = `${dataKey}:lock`;
    tokenCounter += 1;
    const token = `${TOKEN_PREFIX}${tokenCounter.toString(36)}`;
    const lockTtl = this.#lockTtlSeconds();
    const deadline = performance.now() + waitMs;
    let retryMs = FIRST_RETRY_MS;
    for (;;) {
      const attemptedAt = performance.now();
      // The data only counts once the lock is ours: then no other request can change it.
      const { locked, cas, data } = await this.#io('read', async () => {
        if (ring !== undefined) {
          const reply = await ring.lockAndGet(lockKey, token, lockTtl, dataKey);
          return { locked: reply.cas !== null, cas: reply.cas, data: reply.data };
        }
        if (!(await client.add(lockKey, token, lockTtl))) {
          return { locked: false, cas: null, data: undefined };
        }
        return { locked: true, cas: null, data: await client.get(dataKey) };
      });
      if (locked) {
        this.#hold(token, lockKey, cas, attemptedAt);
        return { data: data ?? null, lock: { token } };
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw new SessionLockTimeoutError(Math.round(waitMs), this.name);
      await pause(Math.min(retryMs, remaining));
      retryMs = Math.min(retryMs * 2, LONGEST_RETRY_MS);
    }
  }

  async peek(key: SessionKey): Promise<string | null> {
    const client = this.#requireClient();
    return (await this.#io('peek', () => client.get(this.#dataKey(key)))) ?? null;
  }

  async write(key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    const client = this.#requireClient();
    const dataKey = this.#dataKey(key);
    const held = this.#stillHeld(lock, 'write');
    const lifetime = this.#lifetime();
    if (this.#ring !== undefined && held.cas !== null) {
      const { lockKey, cas } = held;
      const ring = this.#ring;
      const wasOurs = await this.#io('write', () =>
        ring.saveAndUnlock(dataKey, data, lifetime, lockKey, cas),
      );
      // Only now: after a failure the manager calls close(), which needs the lock's CAS.
      this.#forget(lock.token);
      if (!wasOurs) this.#warnLockLost(lockKey);
      return;
    }
    // Checking first narrows the lost-lock case to a stall between this get and the set below
    // (memcached has no conditional write across two keys).
    const holder = await this.#io('write', () => client.get(held.lockKey));
    if (holder !== lock.token) throw this.#lockLost('write');
    await this.#io('write', () => client.set(dataKey, data, lifetime));
    await this.#release(lock);
  }

  /**
   * Restarts the lifetime with `touch`. When the item has gone (evicted or expired), the request's
   * copy is stored with `add`: should another request have stored the session meanwhile (possible
   * only if this lock was lost, or already released below), its copy wins over this unchanged one.
   * So a lost lock does no harm here, and is not checked.
   */
  async updateTimestamp(key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    const client = this.#requireClient();
    const dataKey = this.#dataKey(key);
    const held = this.#held.get(lock.token);
    const lifetime = this.#lifetime();
    if (this.#ring !== undefined && held !== undefined && held.cas !== null) {
      const { lockKey, cas } = held;
      const ring = this.#ring;
      const touched = await this.#io('touch', () =>
        ring.touchAndUnlock(dataKey, lifetime, lockKey, cas),
      );
      this.#forget(lock.token);
      if (!touched) await this.#io('write', () => ring.add(dataKey, data, lifetime));
      return;
    }
    const touched = await this.#io('touch', () => client.touch(dataKey, lifetime));
    if (!touched) await this.#io('write', () => client.add(dataKey, data, lifetime));
    await this.#release(lock);
  }

  async close(_key: SessionKey, lock: SessionLock): Promise<void> {
    await this.#release(lock);
  }

  async destroy(key: SessionKey, lock: SessionLock | null): Promise<void> {
    const client = this.#requireClient();
    await this.#io('destroy', () => client.delete(this.#dataKey(key)));
    if (lock !== null) await this.#release(lock);
  }

  async validateId(key: SessionKey): Promise<boolean> {
    return (await this.peek(key)) !== null;
  }

  /** memcached expires sessions by their TTL, so there is nothing to collect. */
  async gc(_maxLifetimeSeconds: number): Promise<number> {
    return 0;
  }

  async shutdown(): Promise<void> {
    for (const held of this.#held.values()) clearInterval(held.renewal);
    this.#held.clear();
    const ring = this.#ring;
    this.#client = undefined;
    this.#ring = undefined;
    await ring?.disconnect();
  }

  /** `<cookieName>:[<ip>:]{<id>}`: the braces mark the hash tag that keeps data and lock together. */
  #dataKey(key: SessionKey): string {
    return `${this.#prefix}${key.ip === null ? '' : `${key.ip}:`}{${key.id}}`;
  }

  /** Records a lock just taken and renews it (touch) every third of its TTL until it is released. */
  #hold(token: string, lockKey: string, cas: string | null, confirmedAt: number): void {
    const settings = this.#requireSettings();
    const ttl = this.#lockTtlSeconds();
    const renewal = setInterval(
      () => {
        const client = this.#client;
        if (client === undefined) return;
        const sentAt = performance.now();
        this.#io('lock renewal', () => client.touch(lockKey, ttl)).then(
          (touched) => {
            const held = this.#held.get(token);
            if (held === undefined) return;
            if (touched) {
              held.confirmedAt = sentAt;
              return;
            }
            held.lost = true;
            this.#warnLockLost(lockKey);
          },
          (error: unknown) => {
            settings.logger.error(`keepsake: renewing the memcached lock ${lockKey} failed`, error);
          },
        );
      },
      Math.floor((ttl * 1000) / 3),
    );
    renewal.unref();
    this.#held.set(token, { lockKey, cas, confirmedAt, lost: false, renewal });
  }

  /**
   * The lock of `lock`, if it can still be ours: not reported gone by a renewal, and confirmed less
   * than its TTL minus memcached's one-second clock granularity ago (else a stall outlived it).
   */
  #stillHeld(lock: SessionLock, operation: string): HeldLock {
    const held = this.#held.get(lock.token);
    const validMs = (this.#lockTtlSeconds() - 1) * 1000;
    if (held === undefined || held.lost || performance.now() - held.confirmedAt >= validMs) {
      throw this.#lockLost(operation);
    }
    return held;
  }

  /** Stops renewing a lock and forgets it; answers what was held. */
  #forget(token: string): HeldLock | undefined {
    const held = this.#held.get(token);
    if (held === undefined) return undefined;
    clearInterval(held.renewal);
    this.#held.delete(token);
    return held;
  }

  /**
   * Only the owner deletes the lock. With the built-in client, a meta delete on the lock's CAS makes
   * that atomic. Another client has no such delete, so it is get, compare, delete: the lock could
   * change hands in between only if it expired there, and it was renewed until now.
   */
  async #release(lock: SessionLock): Promise<void> {
    const client = this.#requireClient();
    const held = this.#forget(lock.token);
    if (held === undefined) return;
    const { lockKey, cas } = held;
    if (this.#ring !== undefined && cas !== null) {
      const ring = this.#ring;
      await this.#io('unlock', () => ring.unlock(lockKey, cas));
      return;
    }
    const holder = await this.#io('unlock', () => client.get(lockKey));
    if (holder === lock.token) await this.#io('unlock', () => client.delete(lockKey));
  }

  #warnLockLost(lockKey: string): void {
    this.#requireSettings().logger.warn(
      `keepsake: the memcached lock ${lockKey} was gone before its request ended (evicted, or this process stalled for longer than lockTtl); another request may have changed the session meanwhile.`,
    );
  }

  /**
   * lockTtl in whole seconds (memcached's unit), at least 2: memcached's clock ticks once a second,
   * so a 1-second item can expire at the very next tick, even a few milliseconds after it was set.
   */
  #lockTtlSeconds(): number {
    return Math.max(2, Math.ceil(this.#requireSettings().lockTtlMs / 1000));
  }

  /** The data TTL as memcached's exptime (never 0, which would mean "never expires"). */
  #lifetime(): number {
    const seconds = Math.max(1, this.#requireSettings().lifetimeSeconds);
    if (seconds <= RELATIVE_EXPTIME_LIMIT) return seconds;
    // An absolute time is compared with the server's real clock, not the injectable one.
    return Math.floor(Date.now() / 1000) + seconds;
  }

  #lockLost(operation: string): SessionStoreError {
    const { lockTtlMs } = this.#requireSettings();
    return new SessionStoreError(
      this.name,
      operation,
      new Error(
        `the session lock expired or was evicted before the save (lockTtl ${lockTtlMs} ms), ` +
          'so another request may own the session now; the changes were not saved rather than overwrite theirs',
      ),
    );
  }

  /**
   * Every store call is bounded by ioTimeout and fails as a SessionStoreError. The built-in client
   * bounds each command itself (and drops a connection that stopped answering).
   */
  async #io<Result>(operation: string, call: () => Promise<Result>): Promise<Result> {
    if (this.#ring !== undefined) {
      try {
        return await call();
      } catch (error) {
        throw new SessionStoreError(this.name, operation, error);
      }
    }
    const { ioTimeoutMs } = this.#requireSettings();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer from memcached within ioTimeout (${ioTimeoutMs} ms)`)),
        ioTimeoutMs,
      );
    });
    try {
      return await Promise.race([call(), timeout]);
    } catch (error) {
      throw new SessionStoreError(this.name, operation, error);
    } finally {
      clearTimeout(timer);
    }
  }

  #requireClient(): MemcachedClient {
    if (this.#client === undefined)
      throw new Error(
        'keepsake: the memcached handler was used before open() or after shutdown().',
      );
    return this.#client;
  }

  #requireSettings(): HandlerSettings {
    if (this.#settings === undefined)
      throw new Error('keepsake: the memcached handler was used before open().');
    return this.#settings;
  }
}

export function createHandler(_config: ResolvedConfig): SessionHandler {
  return new MemcachedHandler();
}
