import { SessionValueError } from '../../errors.js';
import type { LockAttempt, SessionKey, SessionStore, TouchOutcome } from '../contract.js';
import { lockedWith } from '../payload-bytes.js';
import type { MemcachedConnection } from './connection.js';
import { exptime } from './expiry.js';
import { type ItemLayout, keepsakeItemLayout } from './item-layout.js';
import type { ItemKeys } from './keys.js';
import {
  addLock,
  deleteItem,
  peekItem,
  readItem,
  replaceLock,
  setItem,
  storeItem,
  touchItem,
} from './meta-commands.js';
import type { ServerPool } from './pool.js';
import { flagOf, type MetaReply, type Reply } from './reply-reader.js';

/** A lock this store took, as far as it knows it. */
interface HeldLock {
  readonly keys: ItemKeys;
  readonly token: string;
  /** The lock item's CAS as this store last set it. */
  lockCas: string;
  /** The session item's CAS as read under this lock; null when no session was stored. */
  dataCas: string | null;
  /** performance.now() when the lock was last set (taken or renewed). */
  setAt: number;
}

const NOT_LOCKED: LockAttempt = { locked: false };
/**
 * What a revoked session's item holds for a while: no bytes, which no payload is. It reads as no
 * session, and being there it refuses the store-where-none-exists of a holder that read none.
 */
const REVOKED = Buffer.alloc(0);
/** Whose the lock is while a revoke replaces the session's item. */
const REVOKING = 'keepsake:revoke';
/** memcached's per-item overhead over key and value (header, CAS, CRLF): 59 bytes measured on 1.6. */
const ITEM_OVERHEAD_BYTES = 64;

/** The reply as a meta reply; an error reply (or anything else) throws with memcached's own words. */
function meta(reply: Reply | undefined, command: string): MetaReply {
  if (reply?.kind === 'meta') return reply;
  const said = reply === undefined ? 'nothing' : reply.kind === 'error' ? reply.line : 'stats';
  throw new Error(`memcached answered ${said} to ${command}`);
}

function expectStatus(reply: MetaReply, command: string, ...statuses: string[]): void {
  if (!statuses.includes(reply.status)) {
    throw new Error(`memcached answered ${reply.status} to ${command}`);
  }
}

/** The CAS of a reply with status `status`; undefined for any other status. */
function casIf(reply: MetaReply, status: string): string | undefined {
  if (reply.status !== status) return undefined;
  const cas = flagOf(reply, 'c');
  if (cas === undefined) {
    throw new Error(`memcached answered ${reply.status} without the CAS asked for`);
  }
  return cas;
}

/**
 * Sessions in memcached through keepsake's own client, with meta commands. The lock is an item
 * added (never get-then-set) next to the session's, holding the request's token and the time it
 * may be taken over; an uncontended request costs two round trips: add-lock + read, then store +
 * unlock, each pair in one write.
 *
 * A lock whose holder stopped renewing it is taken over by another request lockTtl after it was
 * last set — replaced on its CAS, so only one request can take it — and otherwise frees itself
 * when memcached expires its item (lockTtl rounded up, plus a second).
 *
 * Fencing, as far as memcached allows: every unlock is a delete on the lock's CAS, so it never
 * removes a lock that changed hands; and a session is stored or deleted only at the version read
 * under the lock (stored only where none exists, if none was read), so a late write can never
 * revive a session another request deleted, nor overwrite one it stored. memcached cannot make a
 * write depend on another key, though: a write already on its way when its lock changed hands, over
 * a session nobody has written since, still lands; it answers false, and the new holder's own write
 * is then refused rather than lose it. The core's lease keeps that window to a write in flight: it
 * sends none once lockTtl has passed since the lock was last confirmed.
 */
export class MetaStore implements SessionStore {
  readonly #pool: ServerPool;
  readonly #layout: ItemLayout;
  readonly #lockTtlMs: number;
  readonly #lockSeconds: number;
  /** The locks this store took and has not seen end, by token; oldest-set first. */
  readonly #held = new Map<string, HeldLock>();

  constructor(
    pool: ServerPool,
    prefix: string,
    lockTtlMs: number,
    layout: ItemLayout = keepsakeItemLayout(prefix, lockTtlMs),
  ) {
    this.#pool = pool;
    this.#layout = layout;
    this.#lockTtlMs = lockTtlMs;
    this.#lockSeconds = layout.lockSeconds;
  }

  async lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    const keys = this.#layout.keys(key);
    const connection = this.#pool.connectionFor(keys.lock);
    const setAt = performance.now();
    const [added, read] = await connection.send([
      addLock(keys.lock, this.#lockValue(token), this.#lockSeconds, this.#layout.lockFlags),
      readItem(keys.data),
    ]);
    const reply = meta(added, 'a lock add');
    const lockCas = casIf(reply, 'HD');
    if (lockCas !== undefined) {
      return this.#taken(connection, { keys, token, lockCas, dataCas: null, setAt }, read);
    }
    expectStatus(reply, 'a lock add', 'NS');
    return this.#takeOverExpired(connection, keys, token);
  }

  async renewLock(key: SessionKey, token: string): Promise<boolean> {
    const held = this.#heldFor(key, token);
    if (held === undefined) return false;
    const connection = this.#pool.connectionFor(held.keys.lock);
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const setAt = performance.now();
      const [replaced] = await connection.send([
        replaceLock(
          held.keys.lock,
          this.#lockValue(token),
          this.#lockSeconds,
          this.#layout.lockFlags,
          held.lockCas,
        ),
      ]);
      const reply = meta(replaced, 'a lock renewal');
      const cas = casIf(reply, 'HD');
      if (cas !== undefined) {
        held.lockCas = cas;
        held.setAt = setAt;
        this.#remember(held);
        return true;
      }
      expectStatus(reply, 'a lock renewal', 'EX', 'NF');
      if (reply.status === 'NF' || (await this.#ownCas(connection, held)) === undefined) break;
    }
    this.#forget(held);
    return false;
  }

  async writeAndUnlock(
    key: SessionKey,
    token: string,
    payload: string,
    lifetimeSeconds: number,
  ): Promise<boolean> {
    const held = this.#heldFor(key, token);
    if (held === undefined) return false;
    const connection = this.#pool.connectionFor(held.keys.lock);
    const value = Buffer.from(payload, 'utf8');
    this.#assertFits(connection, held.keys.data, value);
    const expires = exptime(lifetimeSeconds);
    const [stored, unlocked] = await connection.send([
      storeItem(held.keys.data, value, expires, held.dataCas),
      deleteItem(held.keys.lock, held.lockCas),
    ]);
    const ours = await this.#released(connection, held, unlocked);
    const store = meta(stored, 'a session store');
    expectStatus(store, 'a session store', 'HD', 'NS', 'EX', 'NF');
    if (!ours) return false;
    if (store.status === 'HD') return true;
    if (store.status === 'NF' && held.dataCas !== null) {
      // The session was evicted or expired while the lock was ours: store this request's copy,
      // unless another request has stored one since the lock was released.
      const [added] = await connection.send([storeItem(held.keys.data, value, expires, null)]);
      const addReply = meta(added, 'a session store');
      expectStatus(addReply, 'a session store', 'HD', 'NS');
      return addReply.status === 'HD';
    }
    // Another writer changed the session while the lock was ours: refused rather than overwrite it.
    return false;
  }

  async touchAndUnlock(
    key: SessionKey,
    token: string,
    lifetimeSeconds: number,
  ): Promise<TouchOutcome> {
    const held = this.#heldFor(key, token);
    if (held === undefined) return 'fenced';
    const connection = this.#pool.connectionFor(held.keys.lock);
    const [touched, unlocked] = await connection.send([
      touchItem(held.keys.data, exptime(lifetimeSeconds)),
      deleteItem(held.keys.lock, held.lockCas),
    ]);
    const ours = await this.#released(connection, held, unlocked);
    const touch = meta(touched, 'a touch');
    expectStatus(touch, 'a touch', 'HD', 'EN');
    if (!ours) return 'fenced';
    if (touch.status === 'HD') return 'touched';
    // The session is gone (evicted or expired): the lock is taken back for the write that follows.
    const setAt = performance.now();
    const [retaken] = await connection.send([
      addLock(held.keys.lock, this.#lockValue(token), this.#lockSeconds, this.#layout.lockFlags),
    ]);
    const reply = meta(retaken, 'a lock add');
    const lockCas = casIf(reply, 'HD');
    if (lockCas === undefined) {
      expectStatus(reply, 'a lock add', 'NS');
      return 'fenced';
    }
    this.#remember({ keys: held.keys, token, lockCas, dataCas: null, setAt });
    return 'missing';
  }

  async destroyAndUnlock(key: SessionKey, token: string): Promise<boolean> {
    const held = this.#heldFor(key, token);
    if (held === undefined) return false;
    const connection = this.#pool.connectionFor(held.keys.lock);
    const [deleted, unlocked] = await connection.send([
      deleteItem(held.keys.data, held.dataCas),
      deleteItem(held.keys.lock, held.lockCas),
    ]);
    const ours = await this.#released(connection, held, unlocked);
    const deletion = meta(deleted, 'a session delete');
    expectStatus(deletion, 'a session delete', 'HD', 'EX', 'NF');
    if (!ours) return false;
    if (deletion.status === 'EX') {
      // Written while the lock was ours, by a request whose own lock had expired: deleted all the same.
      const [again] = await connection.send([deleteItem(held.keys.data, null)]);
      expectStatus(meta(again, 'a session delete'), 'a session delete', 'HD', 'NF');
    }
    return true;
  }

  async unlock(key: SessionKey, token: string): Promise<void> {
    // The lock item is all a lock leaves behind, so there is nothing to discard.
    const held = this.#heldFor(key, token);
    if (held === undefined) return;
    const connection = this.#pool.connectionFor(held.keys.lock);
    const [unlocked] = await connection.send([deleteItem(held.keys.lock, held.lockCas)]);
    await this.#released(connection, held, unlocked);
  }

  /**
   * Takes the lock whoever holds it (set, not add), replaces the session's item by REVOKED, and
   * releases the lock on its CAS. A holder's later unlock, renewal or store finds the lock changed
   * or gone, so it answers false or 'fenced'; its store, checked on the session's version (or on
   * none existing), cannot land over REVOKED; and while revoke holds the lock, no request can take
   * it and read the session about to be replaced. REVOKED lives as long as a lock item, outliving
   * the lease of every holder revoke fenced: once it expires, only a request that takes the lock
   * anew can store the session. What memcached cannot order remains as with a lost lock: a store
   * already on its way before the revoke lands first, and is then replaced.
   */
  async revoke(key: SessionKey): Promise<void> {
    const keys = this.#layout.keys(key);
    // A holder in this process is refused from now on without asking memcached.
    for (const [token, held] of this.#held) {
      if (held.keys.lock === keys.lock) this.#held.delete(token);
    }
    const connection = this.#pool.connectionFor(keys.lock);
    const [locked, replaced] = await connection.send([
      setItem(keys.lock, this.#lockValue(REVOKING), this.#lockSeconds, this.#layout.lockFlags),
      setItem(keys.data, REVOKED, this.#lockSeconds),
    ]);
    const lock = meta(locked, 'a revoke');
    expectStatus(lock, 'a revoke', 'HD');
    const lockCas = casIf(lock, 'HD') as string;
    try {
      expectStatus(meta(replaced, 'a revoke'), 'a revoke', 'HD');
    } finally {
      const [unlocked] = await connection.send([deleteItem(keys.lock, lockCas)]);
      expectStatus(meta(unlocked, 'an unlock'), 'an unlock', 'HD', 'EX', 'NF');
    }
  }

  async peek(key: SessionKey): Promise<string | null> {
    const { data } = this.#layout.keys(key);
    const [read] = await this.#pool.connectionFor(data).send([peekItem(data)]);
    const reply = meta(read, 'a read');
    expectStatus(reply, 'a read', 'VA', 'EN');
    this.#assertUsable(reply);
    return reply.value === undefined || reply.value.length === 0
      ? null
      : reply.value.toString('utf8');
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }

  /** The lock value for `token` set now: it may be taken over lockTtl from now (wall clock). */
  #lockValue(token: string): Buffer {
    return this.#layout.encodeLock({ expiresAtMs: Date.now() + this.#lockTtlMs, token });
  }

  /** The lock is `held`'s: records it and answers the session read with it. */
  async #taken(
    connection: MemcachedConnection,
    held: HeldLock,
    read: Reply | undefined,
  ): Promise<LockAttempt> {
    let reply: MetaReply;
    try {
      reply = meta(read, 'a read');
      expectStatus(reply, 'a read', 'VA', 'EN');
      this.#assertUsable(reply);
    } catch (error) {
      // Nobody else knows of this lock: give it back before failing.
      await connection.send([deleteItem(held.keys.lock, held.lockCas)]).catch(() => {});
      throw error;
    }
    const bytes = reply.value;
    // A REVOKED item keeps its CAS: this lock's write replaces it on that version.
    held.dataCas = bytes === undefined ? null : (flagOf(reply, 'c') ?? null);
    this.#remember(held);
    // t: seconds left, -1 for an item without expiry (keepsake never stores one).
    const secondsLeft = Number(flagOf(reply, 't') ?? -1);
    return lockedWith(
      bytes === undefined || bytes.length === 0 ? null : bytes,
      'the memcached item',
      secondsLeft > 0 ? secondsLeft * 1000 : undefined,
    );
  }

  /**
   * The lock is held: if its time is up (its holder stalled or crashed and renewed it for lockTtl),
   * takes it over by replacing it on the CAS it was read with, so that of several requests only
   * one can, and reads the session after it.
   */
  async #takeOverExpired(
    connection: MemcachedConnection,
    keys: ItemKeys,
    token: string,
  ): Promise<LockAttempt> {
    const [current] = await connection.send([readItem(keys.lock)]);
    const reply = meta(current, 'a lock read');
    expectStatus(reply, 'a lock read', 'VA', 'EN');
    // EN: released meanwhile; the next attempt adds it.
    if (reply.value === undefined) return NOT_LOCKED;
    const holder = this.#layout.decodeLock(reply.value);
    const cas = flagOf(reply, 'c');
    if (holder === undefined || cas === undefined || Date.now() < holder.expiresAtMs) {
      return NOT_LOCKED;
    }
    const setAt = performance.now();
    const [replaced, read] = await connection.send([
      replaceLock(
        keys.lock,
        this.#lockValue(token),
        this.#lockSeconds,
        this.#layout.lockFlags,
        cas,
      ),
      readItem(keys.data),
    ]);
    const replacement = meta(replaced, 'a lock takeover');
    const lockCas = casIf(replacement, 'HD');
    if (lockCas === undefined) {
      expectStatus(replacement, 'a lock takeover', 'EX', 'NF');
      return NOT_LOCKED;
    }
    // A stalled request of this process held it: it is refused from now on without asking memcached.
    for (const [heldToken, stalled] of this.#held) {
      if (stalled.keys.lock === keys.lock && this.#layout.isHolder(holder, heldToken)) {
        this.#held.delete(heldToken);
      }
    }
    return this.#taken(connection, { keys, token, lockCas, dataCas: null, setAt }, read);
  }

  /**
   * Settles a CAS-checked unlock. EX means the lock changed since this store last set it: still
   * ours if it still holds our token (a renewal whose answer was lost changed the CAS), and then
   * deleted on its current CAS. Answers whether the lock was ours until released.
   */
  async #released(
    connection: MemcachedConnection,
    held: HeldLock,
    reply: Reply | undefined,
  ): Promise<boolean> {
    const unlocked = meta(reply, 'an unlock');
    expectStatus(unlocked, 'an unlock', 'HD', 'EX', 'NF');
    let ours = unlocked.status === 'HD';
    if (unlocked.status === 'EX') {
      const cas = await this.#ownCas(connection, held);
      if (cas !== undefined) {
        const [again] = await connection.send([deleteItem(held.keys.lock, cas)]);
        const retried = meta(again, 'an unlock');
        expectStatus(retried, 'an unlock', 'HD', 'EX', 'NF');
        ours = retried.status === 'HD';
      }
    }
    this.#forget(held);
    return ours;
  }

  /** The lock's current CAS if it still holds `held`'s token (then recorded), else undefined. */
  async #ownCas(connection: MemcachedConnection, held: HeldLock): Promise<string | undefined> {
    const [current] = await connection.send([readItem(held.keys.lock)]);
    const reply = meta(current, 'a lock read');
    expectStatus(reply, 'a lock read', 'VA', 'EN');
    const cas = flagOf(reply, 'c');
    const lock = reply.value === undefined ? undefined : this.#layout.decodeLock(reply.value);
    if (lock === undefined || !this.#layout.isHolder(lock, held.token) || cas === undefined) {
      return undefined;
    }
    held.lockCas = cas;
    return cas;
  }

  /** The lock `token` holds on `key`'s session, as this store knows it. */
  #heldFor(key: SessionKey, token: string): HeldLock | undefined {
    const held = this.#held.get(token);
    return held?.keys.data === this.#layout.keys(key).data ? held : undefined;
  }

  /**
   * Records a lock (last in the map, which stays ordered by when each was set) and forgets those
   * whose item has certainly expired: they can be nobody's any more.
   */
  #remember(held: HeldLock): void {
    const expiredBefore = performance.now() - (this.#lockSeconds + 1) * 1000;
    for (const [oldToken, old] of this.#held) {
      if (old.setAt >= expiredBefore) break;
      this.#held.delete(oldToken);
    }
    this.#held.delete(held.token);
    this.#held.set(held.token, held);
  }

  #forget(held: HeldLock): void {
    if (this.#held.get(held.token) === held) this.#held.delete(held.token);
  }

  /** A session item the layout cannot use as it is (compressed by PHP, say) is left alone. */
  #assertUsable(reply: MetaReply): void {
    if (reply.value === undefined) return;
    const refusal = this.#layout.refusal(Number(flagOf(reply, 'f') ?? 0));
    if (refusal !== undefined) {
      throw new SessionValueError(
        `keepsake: the session item in memcached cannot be read: ${refusal}. The session was left as it is.`,
      );
    }
  }

  /**
   * memcached refuses an item over its `-I` limit, and deletes the stored one when it does: such a
   * write is refused here, before it is sent, so the session stored stays as it was.
   */
  #assertFits(connection: MemcachedConnection, dataKey: string, value: Buffer): void {
    const limit = connection.itemSizeMax;
    if (limit === undefined) return;
    const itemBytes = value.length + Buffer.byteLength(dataKey) + ITEM_OVERHEAD_BYTES;
    if (itemBytes > limit) {
      throw new Error(
        `the session is ${value.length} bytes, too large for memcached at ${connection.id}, which stores items ` +
          `of at most ${limit} bytes with their key and header (its -I option); raise -I or lower maxPayloadBytes. ` +
          'Nothing was sent, so the stored session is unchanged.',
      );
    }
  }
}
