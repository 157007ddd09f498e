import { type Clock, nowSeconds } from './clock.js';
import type { SessionKey } from './drivers/contract.js';
import { SessionLockTimeoutError } from './errors.js';
import type { HeldLock, LockProtocol } from './lock-protocol.js';
import type { KeyedQueue } from './locks.js';
import { isPlainRecord } from './markers.js';
import type { PayloadCipher } from './payload-cipher.js';
import { deserialize, serialize } from './serializer.js';
import type { StorageIds } from './storage-key.js';

/**
 * Top-level key of a user's index record. A record holding it is never served as a session, even
 * to a cookie that names its key.
 */
export const INDEX_KEY = '__keepsake_index';

/** One session in a user's index, under its handle. */
export interface IndexEntry {
  /** The session's store key and matchIP slot: where it is stored now. */
  readonly key: string;
  readonly ip: string | null;
  /** When the session was created (seconds). */
  readonly created: number;
  /** When this entry was last written (seconds); the session refreshes it once per lifetime. */
  readonly indexedAt: number;
  /** The session's store lifetime (seconds) when it was indexed. */
  readonly lifetime: number;
  /** What the app chose to record when it bound the session. */
  readonly clientIp?: string;
  readonly userAgent?: string;
}

export type IndexEntries = Map<string, IndexEntry>;

export interface UserIndexContext {
  readonly protocol: LockProtocol;
  readonly queue: KeyedQueue;
  readonly storageIds: StorageIds;
  readonly cipher: PayloadCipher | undefined;
  readonly clock: Clock;
  readonly lockWaitMs: number;
  readonly driverName: string;
}

/**
 * An entry that has not been refreshed for two of its lifetimes belongs to a session that cannot
 * be live: a live session refreshes its entry at a commit once a lifetime has passed since the last
 * refresh, and lives at most one lifetime past its last commit.
 */
function isDead(entry: IndexEntry, now: number): boolean {
  return entry.indexedAt + 2 * entry.lifetime < now;
}

function entryOf(raw: unknown): IndexEntry | undefined {
  if (!isPlainRecord(raw)) return undefined;
  const { key, ip, created, indexedAt, lifetime, clientIp, userAgent } = raw;
  if (typeof key !== 'string' || (ip !== null && typeof ip !== 'string')) return undefined;
  if (typeof created !== 'number' || typeof indexedAt !== 'number') return undefined;
  if (typeof lifetime !== 'number') return undefined;
  return {
    key,
    ip,
    created,
    indexedAt,
    lifetime,
    ...(typeof clientIp === 'string' ? { clientIp } : {}),
    ...(typeof userAgent === 'string' ? { userAgent } : {}),
  };
}

/**
 * Which sessions each user has: one record per user, in the session store itself, under a key
 * derived from the user ID (keyed by the hashIds secret when set) that has the shape of a session
 * key, so every driver stores it as it stores a session, with a lifetime and GC. It is changed only
 * under its own lock, through the same lock protocol as sessions, on the rare events that change
 * it: a binding, a regeneration, a destroy, a revocation, and a refresh once per session lifetime.
 * A request needs no round trip for it otherwise.
 *
 * The index may hold entries of sessions that are gone (a crash between the index write and the
 * session's, a session that expired): listing checks each session, and entries that cannot be live
 * any more are dropped whenever the record is written. It never lacks a live session: an entry is
 * written before the session it names.
 */
export class UserIndex {
  readonly #context: UserIndexContext;

  constructor(context: UserIndexContext) {
    this.#context = context;
  }

  keyOf(userId: string): SessionKey {
    return { id: this.#context.storageIds.indexKeyOf(userId), ip: null };
  }

  /** The user's entries as stored (without taking the lock); empty when there are none. */
  async read(userId: string): Promise<IndexEntries> {
    const key = this.keyOf(userId);
    const stored = await this.#context.protocol.peek(key);
    return stored === null ? new Map() : this.#parse(stored, key.id);
  }

  /**
   * Changes the user's entries under the record's lock: `change` edits them (it may do store calls,
   * such as revocations, while the lock is held), then dead entries are dropped and the record is
   * written (or deleted when empty). Answers what `change` answered.
   */
  async update<Result>(
    userId: string,
    change: (entries: IndexEntries) => Promise<Result> | Result,
  ): Promise<Result> {
    const { protocol, queue, lockWaitMs, driverName } = this.#context;
    const key = this.keyOf(userId);
    const releaseQueue = queue.tryAcquire(key.id) ?? (await queue.acquire(key.id, lockWaitMs));
    if (releaseQueue === undefined) throw new SessionLockTimeoutError(lockWaitMs, driverName);
    try {
      const taken = await protocol.acquire(key, lockWaitMs);
      let result: Result;
      let entries: IndexEntries;
      try {
        entries = taken.payload === null ? new Map() : this.#parse(taken.payload, key.id);
        result = await change(entries);
      } catch (error) {
        protocol.abandon(taken.lock);
        throw error;
      }
      await this.#store(taken.lock, key.id, userId, entries);
      return result;
    } finally {
      releaseQueue();
    }
  }

  async #store(lock: HeldLock, storeKey: string, userId: string, entries: IndexEntries) {
    const { protocol, cipher, clock } = this.#context;
    const now = nowSeconds(clock);
    let lifetime = 0;
    for (const [handle, entry] of entries) {
      if (isDead(entry, now)) entries.delete(handle);
      else lifetime = Math.max(lifetime, entry.indexedAt + 2 * entry.lifetime - now);
    }
    if (entries.size === 0) {
      await (lock.found ? protocol.destroy(lock) : protocol.release(lock));
      return;
    }
    const record = { user: userId, sessions: Object.fromEntries(entries) };
    const payload = serialize(new Map([[INDEX_KEY, record]]), false);
    const stored = cipher === undefined ? payload : cipher.encrypt(payload, storeKey);
    // The record outlives every session it names (see isDead); +1 for the rounding of seconds.
    await protocol.write(lock, stored, lifetime + 1);
  }

  #parse(stored: string, storeKey: string): IndexEntries {
    const { cipher } = this.#context;
    const entries: IndexEntries = new Map();
    let record: unknown;
    try {
      const payload = cipher === undefined ? stored : cipher.decrypt(stored, storeKey).plaintext;
      record = deserialize(payload).get(INDEX_KEY);
    } catch {
      // An index that cannot be read is rebuilt by the sessions that refresh their entries; until
      // then revokeAll cannot reach the sessions it named, which keep their own binding.
      return entries;
    }
    if (!isPlainRecord(record) || !isPlainRecord(record.sessions)) return entries;
    for (const [handle, raw] of Object.entries(record.sessions)) {
      const entry = entryOf(raw);
      if (entry !== undefined) entries.set(handle, entry);
    }
    return entries;
  }
}
