import { randomBytes } from 'node:crypto';
import { type CacheLimiter, cacheHeaders } from './cache-limiter.js';
import { type Clock, nowSeconds } from './clock.js';
import {
  type CookieAttributes,
  type CookieSettings,
  deletionCookie,
  readCookie,
  sessionCookie,
} from './cookie.js';
import { publish } from './diagnostics.js';
import type { SessionKey } from './drivers/contract.js';
import {
  SessionClosedError,
  SessionHeadersSentError,
  SessionLockTimeoutError,
  SessionValueError,
} from './errors.js';
import type { SessionIdFormat } from './id.js';
import type { HeldLock, LockProtocol } from './lock-protocol.js';
import type { KeyedQueue } from './locks.js';
import type { SessionLogger } from './log.js';
import {
  ageMarkers,
  isPlainRecord,
  LAST_REGENERATE_KEY,
  META_KEY,
  type SessionMeta,
  takeMeta,
  VARS_KEY,
} from './markers.js';
import type { PayloadCipher } from './payload-cipher.js';
import {
  assertStorable,
  deserialize,
  oversizeMessage,
  serialize,
  serializeWithin,
} from './serializer.js';
import type { BindingDetails, BoundUser, SessionInternals, SessionState } from './session.js';
import type { StorageIds } from './storage-key.js';
import { INDEX_KEY, type IndexEntry, type UserIndex } from './user-index.js';

/** What an adapter tells the manager about a request. */
export interface RequestInfo {
  /** The raw Cookie header(s). */
  cookieHeader: string | readonly string[] | undefined;
  /** The client IP as the framework sees it (used by matchIP). */
  ip: string;
  /** `X-Requested-With: XMLHttpRequest` (any case) was sent. */
  ajax: boolean;
  /** Read the session without locking it; any change throws. */
  readOnly?: boolean;
  /** The request arrived over HTTPS as the framework sees it (for `cookie.secure: 'auto'`). */
  secure?: boolean;
}

/** What every request's lifecycle shares; the manager builds it once from the configuration. */
export interface LifecycleContext {
  readonly protocol: LockProtocol;
  /** The in-process FIFO queue per session: requests of one process wait on a promise, not the store. */
  readonly queue: KeyedQueue;
  readonly driverName: string;
  readonly cookieName: string;
  readonly cookie: CookieSettings;
  /** Called when a Secure cookie is about to go out over plain HTTP (browsers drop it). */
  readonly onSecureCookieOverHttp: () => void;
  readonly cacheLimiter: CacheLimiter;
  /** Minutes, for the 'private' and 'public' limiters. */
  readonly cacheExpire: number;
  /** Cookie lifetime in seconds (0: until the browser closes). */
  readonly expiration: number;
  /** Seconds the store keeps a session after its last write or touch. */
  readonly lifetimeSeconds: number;
  readonly matchIP: boolean;
  readonly timeToUpdate: number;
  readonly regenerateDestroy: boolean;
  readonly regenerateGraceSeconds: number;
  readonly lockWaitMs: number;
  readonly maxPayloadBytes: number;
  /** Seconds after its creation that a session ends, however active; 0: no limit. */
  readonly absoluteLifetime: number;
  /** Encrypts payloads (bound to the session ID) when the encryption option is set. */
  readonly cipher: PayloadCipher | undefined;
  /** Maps session IDs to store keys. */
  readonly storageIds: StorageIds;
  /** Each user's sessions, for bindUser(), sessionsOf() and revocation. */
  readonly userIndex: UserIndex;
  /** Seconds the store keeps a browser session (a session whose own lifetime is 0). */
  readonly browserSessionLifetimeSeconds: number;
  /** Store (and send the cookie of) a new session that holds no userdata, as CodeIgniter does. */
  readonly createEmptySessions: boolean;
  /** An unchanged session's expiry is refreshed once this fraction of its lifetime has passed. */
  readonly touchAfter: number;
  readonly clock: Clock;
  readonly logger: SessionLogger;
  /** The IDs this manager issues and accepts from cookies. */
  readonly sessionIds: SessionIdFormat;
}

/** Top-level key of the record left under an old ID after a regeneration: where the session went. */
export const MOVED_KEY = '__keepsake_moved';
const MAX_MOVES_FOLLOWED = 3;

/** A store lock with its place in the in-process queue. */
interface Held {
  readonly lock: HeldLock;
  readonly releaseQueue: () => void;
}

/** Lowercase, and IPv4-mapped IPv6 (::ffff:1.2.3.4) as plain IPv4, so one client keeps one slot. */
export function normalizeIp(ip: string): string {
  const lowered = ip.trim().toLowerCase();
  return lowered.startsWith('::ffff:') && lowered.includes('.') ? lowered.slice(7) : lowered;
}

/**
 * One request's session, from the cookie to the Set-Cookie: lock + read (following a regenerated
 * session to its new ID), automatic regeneration, the flash/temp step, then write or touch +
 * unlock, and the cookies to send. It is the Session's internal state: the Session reads `data`,
 * `id` and `state` here and calls regenerate(), destroy() and close().
 *
 * Whatever lock it takes is held in `#held` from the moment it is taken, so any failure on the way
 * releases it.
 */
export class RequestLifecycle implements SessionInternals {
  data = new Map<string, unknown>();
  id = '';
  state: SessionState;
  readonly clock: Clock;
  readonly maxPayloadBytes: number;
  readonly #context: LifecycleContext;
  readonly #ip: string;
  readonly #clientIp: string;
  readonly #ajax: boolean;
  readonly #secure: boolean | undefined;
  readonly #incomingId: string | undefined;
  #held: Held | undefined;
  /** The payload as read from the store; a write happens only when the data serializes differently. */
  #storedPayload: string | null = null;
  /** How long the stored session had left to live when it was read, when the store said. */
  #expiresInMs: number | undefined;
  #issuedNewId = false;
  /** The plaintext of the payload #parse() read last, and whether an older key encrypted it. */
  #plaintext = '';
  #staleKey = false;
  /** keepsake's own facts about the session, stored with it but kept out of the data. */
  #meta: SessionMeta = {};
  /** setLifetime() changed the cookie's Max-Age: the cookie goes out again. */
  #lifetimeChanged = false;
  /** What bindUser() asked to record in the user's index, until the commit records it. */
  #binding: BindingDetails | undefined;
  /** The user and handle this session was bound to before bindUser() bound it to another. */
  #unbound: { readonly user: string; readonly handle: string } | undefined;
  /**
   * A new session the store has not heard of: its ID is neither locked nor stored until commit
   * finds userdata to store. Nobody else can know the ID before its cookie goes out, so nothing
   * can contend for it meanwhile — and a visitor who stores nothing costs no store round trip.
   */
  #deferred = false;
  #idChanged = false;
  #headersSent = false;
  /** The cookie of this session's current ID went out with the headers. */
  #cookieSent = false;
  /** commit() or destroy() has run: the store is done with. */
  #finished = false;

  constructor(context: LifecycleContext, request: RequestInfo) {
    this.#context = context;
    this.clock = context.clock;
    this.maxPayloadBytes = context.maxPayloadBytes;
    const cookieValue = readCookie(request.cookieHeader, context.cookieName);
    this.#incomingId = context.sessionIds.isValid(cookieValue) ? cookieValue : undefined;
    this.#clientIp = normalizeIp(request.ip);
    this.#ip = context.matchIP ? this.#clientIp : '';
    this.#ajax = request.ajax;
    this.#secure = request.secure;
    this.state = request.readOnly ? 'readOnly' : 'open';
  }

  /** Reads (and, unless read-only, locks) the session. Rejects with SessionLockTimeoutError or SessionStoreError (→ 503). */
  async start(): Promise<void> {
    if (this.state === 'readOnly') {
      await this.#startReadOnly();
      ageMarkers(this.data, nowSeconds(this.clock));
      return;
    }
    try {
      await this.#startLocked();
      await this.#autoRegenerate();
      ageMarkers(this.data, nowSeconds(this.clock));
    } catch (error) {
      await this.#abandon();
      throw error;
    }
  }

  /** Writes (or only touches, when unchanged) and unlocks. Idempotent; session.close() calls it early. */
  async commit(): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    if (this.state !== 'open') return;
    this.state = 'closed';
    if (this.#deferred) {
      await this.#storeNew();
      return;
    }
    const held = this.#held;
    this.#held = undefined;
    if (held === undefined) return;
    const { protocol } = this.#context;
    const lifetimeSeconds = this.#storeLifetime();
    try {
      let payload: string;
      try {
        payload = await this.#boundPayload(held.lock.key);
      } catch (error) {
        await this.#giveBack(held.lock);
        throw error;
      }
      if (payload !== this.#storedPayload)
        await protocol.write(held.lock, this.#encode(payload, this.id), lifetimeSeconds);
      else if (this.#dueForTouch())
        await protocol.touch(held.lock, this.#encode(payload, this.id), lifetimeSeconds);
      // Unchanged and recently written or touched: a touch would cost a durable write for nothing.
      else await protocol.release(held.lock);
    } finally {
      held.releaseQueue();
    }
  }

  /**
   * Whether an unchanged session's expiry needs refreshing: once touchAfter of its lifetime has
   * passed since its last write or touch (so it may expire up to that fraction early, never
   * late), or always when the store cannot say how long it has left.
   */
  #dueForTouch(): boolean {
    const { touchAfter } = this.#context;
    const lifetimeSeconds = this.#storeLifetime();
    if (this.#expiresInMs === undefined || touchAfter === 0) return true;
    return this.#expiresInMs <= lifetimeSeconds * 1000 * (1 - touchAfter);
  }

  /** Releases the lock of a session that will not be saved; a failure to release is logged. */
  async #giveBack(lock: HeldLock): Promise<void> {
    await this.#context.protocol.release(lock).catch((releaseError: unknown) => {
      this.#context.logger.error(
        'keepsake: releasing the lock of an unsaved session failed',
        releaseError,
      );
    });
  }

  /** Whether the user's index must record this session again before it is written. */
  #indexDue(): boolean {
    const { indexedAt } = this.#meta;
    if (this.#binding !== undefined || this.#lifetimeChanged || indexedAt === undefined)
      return true;
    return nowSeconds(this.clock) - indexedAt > this.#storeLifetime();
  }

  /**
   * The payload to store under `key`. A bound session is first stamped active, to the precision
   * of a touch (so a request that changes nothing writes no more often than it would touch), and
   * recorded in its user's index when that is due: an entry is always written before the session
   * it names, so revokeAll never misses a live session.
   */
  async #boundPayload(key: SessionKey): Promise<string> {
    if (this.#meta.user === undefined) return this.#payload();
    const now = nowSeconds(this.clock);
    const { active } = this.#meta;
    const precision = Math.max(1, this.#context.touchAfter * this.#storeLifetime());
    if (active === undefined || now - active >= precision) this.#meta.active = now;
    if (this.#indexDue()) await this.#index(key, now);
    return this.#payload();
  }

  /** Records (or moves) this session's entry in its user's index, under store key `key`. */
  async #index(key: SessionKey, now: number): Promise<void> {
    const { user, handle } = this.#meta;
    if (user === undefined || handle === undefined) return;
    const { userIndex } = this.#context;
    const unbound = this.#unbound;
    if (unbound !== undefined) {
      await userIndex.update(unbound.user, (entries) => entries.delete(unbound.handle));
      this.#unbound = undefined;
    }
    const binding = this.#binding;
    const lifetime = this.#storeLifetime();
    await userIndex.update(user, (entries) => {
      const before = entries.get(handle);
      const entry: IndexEntry = {
        key: key.id,
        ip: key.ip,
        created: this.#meta.created ?? before?.created ?? now,
        indexedAt: now,
        lifetime,
        ...(binding === undefined ? pick(before) : pick(binding)),
      };
      entries.set(handle, entry);
    });
    this.#meta.indexedAt = now;
    this.#binding = undefined;
  }

  /** Takes this session's entry out of its user's index (after a destroy); a failure only leaves a dead entry. */
  async #unindex(): Promise<void> {
    const { user, handle } = this.#meta;
    if (user === undefined || handle === undefined) return;
    await this.#context.userIndex
      .update(user, (entries) => entries.delete(handle))
      .catch((error: unknown) =>
        this.#context.logger.warn(
          `keepsake: removing a destroyed session from its user's index failed (${error instanceof Error ? error.message : String(error)}); sessionsOf() skips it, and the entry expires`,
        ),
      );
  }

  /** Whether this is a session worth storing: it holds userdata, or empty sessions are kept too. */
  #worthStoring(): boolean {
    if (this.#context.createEmptySessions) return true;
    for (const key of this.data.keys()) {
      if (key !== LAST_REGENERATE_KEY && key !== VARS_KEY) return true;
    }
    return false;
  }

  /** Stores a new session at commit, when it has something to store, under a freshly locked ID. */
  async #storeNew(): Promise<void> {
    if (!this.#worthStoring()) return;
    if (this.#headersSent && !this.#cookieSent) {
      this.#context.logger.warn(
        `keepsake: session ${this.id.slice(0, 8)}… got its first data after the response headers were sent, so its cookie could not be sent and the data cannot be found again. Set session data before writing the response.`,
      );
      return;
    }
    const payload = this.#payload();
    const { protocol } = this.#context;
    const lifetimeSeconds = this.#storeLifetime();
    for (;;) {
      const taken = await this.#take(this.#key(this.id));
      try {
        // 128 random bits never collide in practice; if they do, the stored session is not ours.
        if (taken.payload === null && taken.unreadable === undefined) {
          let stored = payload;
          try {
            if (this.#meta.user !== undefined)
              stored = await this.#boundPayload(taken.held.lock.key);
          } catch (error) {
            await this.#giveBack(taken.held.lock);
            throw error;
          }
          await protocol.write(taken.held.lock, this.#encode(stored, this.id), lifetimeSeconds);
          publish.sessionCreated(this.#context.driverName);
          return;
        }
        await protocol.release(taken.held.lock);
      } finally {
        taken.held.releaseQueue();
      }
      if (this.#cookieSent)
        throw new Error('keepsake: a new session ID collided after its cookie was sent.');
      this.id = this.#context.sessionIds.create();
    }
  }

  close(): Promise<void> {
    return this.commit();
  }

  setLifetime(seconds: number): void {
    if (this.state !== 'open')
      throw new SessionClosedError(this.state, 'change the session lifetime');
    if (this.#headersSent) throw new SessionHeadersSentError('change the session lifetime');
    if (!Number.isInteger(seconds) || seconds < 0) {
      throw new TypeError(
        `keepsake: setLifetime() takes a whole number of seconds ≥ 0 (0: until the browser closes), got ${String(seconds)}.`,
      );
    }
    this.#meta.lifetime = seconds;
    this.#lifetimeChanged = true;
  }

  bindUser(userId: string, details: BindingDetails = {}): void {
    if (this.state !== 'open')
      throw new SessionClosedError(this.state, 'bind the session to a user');
    if (typeof userId !== 'string' || userId === '') {
      throw new TypeError(
        `keepsake: bindUser() takes the user's ID as a non-empty string (String(user.id)), got ${userId === '' ? 'an empty string' : typeof userId}.`,
      );
    }
    const { user, handle } = this.#meta;
    if (
      user !== undefined &&
      handle !== undefined &&
      user !== userId &&
      this.#unbound === undefined
    )
      this.#unbound = { user, handle };
    if (user !== userId) this.#meta.handle = randomBytes(8).toString('hex');
    this.#meta.user = userId;
    this.#meta.created ??= nowSeconds(this.clock);
    this.#binding = pick(details);
  }

  boundUser(): BoundUser | null {
    const { user, handle } = this.#meta;
    return user === undefined || handle === undefined ? null : { userId: user, handle };
  }

  /** Seconds the store keeps this session after this request. */
  #storeLifetime(): number {
    const { lifetime } = this.#meta;
    if (lifetime === undefined) return this.#context.lifetimeSeconds;
    return lifetime > 0 ? lifetime : this.#context.browserSessionLifetimeSeconds;
  }

  /**
   * The Set-Cookie values for this response. Call it when the headers are being sent: after that,
   * regenerate() throws, because its new cookie could no longer reach the client.
   */
  cookies(): string[] {
    this.#headersSent = true;
    const { cookieName, timeToUpdate, clock } = this.#context;
    const expiration = this.#meta.lifetime ?? this.#context.expiration;
    if (this.state === 'destroyed') {
      return this.#incomingId !== undefined ? [deletionCookie(cookieName, this.#attributes())] : [];
    }
    if (!this.#hasSession()) return [];
    const refresh = (this.#ajax || timeToUpdate === 0) && this.#incomingId === this.id;
    if (this.#issuedNewId || this.#idChanged || this.#lifetimeChanged || refresh) {
      this.#cookieSent = true;
      return [sessionCookie(cookieName, this.id, expiration, clock(), this.#attributes())];
    }
    return [];
  }

  /**
   * The cache headers for this response (PHP's session.cache_limiter): only when the request has
   * a session — an existing one, or a new one that is being stored.
   */
  cacheHeaders(): readonly (readonly [string, string])[] {
    const { cacheLimiter, cacheExpire, clock } = this.#context;
    if (cacheLimiter === false) return [];
    if (this.state !== 'destroyed' && !this.#hasSession()) return [];
    return cacheHeaders(cacheLimiter, cacheExpire, clock());
  }

  /** Whether there is a session to speak of: not a read-only miss, nor a new one that stores nothing. */
  #hasSession(): boolean {
    return this.id !== '' && !(this.#deferred && !this.#worthStoring());
  }

  #attributes(): CookieAttributes {
    const { cookie } = this.#context;
    if (cookie.secure === 'auto') return { ...cookie, secure: this.#secure === true };
    // CodeIgniter 4 refuses a Secure cookie over plain HTTP; keepsake sends it, and says once why
    // the browser will not keep it.
    if (cookie.secure && this.#secure === false) this.#context.onSecureCookieOverHttp();
    return cookie as CookieAttributes;
  }

  /** A new ID now; the data moves to it. The old ID leads to the new one for the grace window, or is deleted. */
  async regenerate(destroyOld = false): Promise<void> {
    if (this.state !== 'open')
      throw new SessionClosedError(this.state, 'regenerate the session ID');
    if (this.#headersSent) throw new SessionHeadersSentError('regenerate the session ID');
    const { protocol, regenerateGraceSeconds, logger, clock } = this.#context;
    // Everything that can fail comes before the new lock is taken or after the old one is handed
    // to the protocol, which releases it whatever happens.
    const now = nowSeconds(clock);
    if (this.#deferred) {
      // Nothing is stored under the ID yet: a new one is all it takes.
      this.id = this.#context.sessionIds.create();
      this.data.set(LAST_REGENERATE_KEY, now);
      return;
    }
    const old = this.#held;
    const oldId = this.id;
    const fresh = await this.#takeFreshId();
    if (this.#meta.user !== undefined) {
      // The new ID is in the user's index before the old one leads to it: a revokeAll at any
      // moment reaches one or the other.
      try {
        await this.#index(fresh.held.lock.key, now);
      } catch (error) {
        await this.#release(fresh.held);
        throw error;
      }
    }
    this.#held = fresh.held;
    this.#storedPayload = null;
    this.id = fresh.id;
    this.data.set(LAST_REGENERATE_KEY, now);
    // A brand-new session's cookie is already due; otherwise the changed ID must be sent.
    if (!this.#issuedNewId) this.#idChanged = true;
    if (old === undefined) return;
    try {
      if (!old.lock.found) {
        await protocol.release(old.lock);
      } else if (destroyOld || regenerateGraceSeconds === 0) {
        await protocol.destroy(old.lock);
      } else {
        // Requests still carrying the old cookie are led to the new ID for the grace window.
        const until = now + regenerateGraceSeconds;
        const to = this.#context.storageIds.forward(oldId, fresh.id);
        const forward = serialize(new Map([[MOVED_KEY, { to, until }]]));
        await protocol.write(old.lock, this.#encode(forward, oldId), regenerateGraceSeconds);
      }
    } finally {
      old.releaseQueue();
    }
    publish.sessionRegenerated(
      this.#context.driverName,
      destroyOld || regenerateGraceSeconds === 0,
    );
    logger.debug(
      `keepsake: regenerated ${oldId.slice(0, 8)}… → ${fresh.id.slice(0, 8)}…${destroyOld ? ' (old ID deleted)' : ''}`,
    );
  }

  /** Deletes the stored session and clears the data; the deletion cookie follows. */
  async destroy(): Promise<void> {
    if (this.state !== 'open') throw new SessionClosedError(this.state, 'destroy the session');
    this.state = 'destroyed';
    this.data.clear();
    this.#finished = true;
    const held = this.#held;
    this.#held = undefined;
    if (held === undefined) return;
    const { protocol, logger } = this.#context;
    try {
      if (held.lock.found) await protocol.destroy(held.lock);
      else await protocol.release(held.lock);
    } finally {
      held.releaseQueue();
    }
    await this.#unindex();
    publish.sessionDestroyed(this.#context.driverName);
    logger.debug(`keepsake: destroyed session ${this.id.slice(0, 8)}…`);
  }

  /** Releases what a failed start took, so the next request does not wait for it. */
  async #abandon(): Promise<void> {
    this.#finished = true;
    this.state = 'closed';
    const held = this.#held;
    this.#held = undefined;
    if (held === undefined) return;
    try {
      await this.#context.protocol.release(held.lock);
    } catch (error) {
      this.#context.logger.error('keepsake: releasing the lock of a failed request failed', error);
    } finally {
      held.releaseQueue();
    }
  }

  async #startReadOnly(): Promise<void> {
    let id = this.#incomingId;
    for (let moves = 0; id !== undefined && moves <= MAX_MOVES_FOLLOWED; moves += 1) {
      const payload = await this.#context.protocol.peek(this.#key(id));
      if (payload === null) return;
      const data = this.#parse(payload, id);
      if (data === undefined || data.has(INDEX_KEY)) return;
      const movedTo = this.#movedTo(data, id);
      if (movedTo === null) {
        const meta = takeMeta(data);
        if (this.#pastAbsoluteLifetime(meta, id)) return;
        this.id = id;
        this.data = data;
        this.#meta = meta;
        return;
      }
      if (movedTo === undefined || movedTo === false) return;
      id = movedTo;
    }
  }

  async #startLocked(): Promise<void> {
    let id = this.#incomingId;
    for (let moves = 0; id !== undefined && moves <= MAX_MOVES_FOLLOWED; moves += 1) {
      const taken = await this.#take(this.#key(id));
      this.#held = taken.held;
      if (taken.unreadable !== undefined) {
        this.#warnCorrupt(id, taken.unreadable);
        await this.#destroyHeld();
        break;
      }
      if (taken.payload === null) {
        await this.#releaseHeld();
        break;
      }
      const data = this.#parse(taken.payload, id);
      if (data?.has(INDEX_KEY)) {
        // A user's index under a key a cookie named: not a session, and left as it is.
        await this.#releaseHeld();
        break;
      }
      const movedTo = data === undefined ? undefined : this.#movedTo(data, id);
      if (data === undefined || movedTo === false) {
        // A corrupt record is replaced by a fresh session, never served or kept.
        await this.#destroyHeld();
        break;
      }
      if (movedTo === null) {
        const meta = takeMeta(data);
        if (this.#pastAbsoluteLifetime(meta, id)) {
          await this.#destroyHeld();
          break;
        }
        this.#meta = meta;
        if (this.#context.absoluteLifetime > 0) this.#meta.created ??= nowSeconds(this.clock);
        // Written again at commit when an older key encrypted it.
        this.#storedPayload = this.#staleKey ? null : this.#plaintext;
        this.#expiresInMs = taken.expiresInMs;
        this.id = id;
        this.data = data;
        this.#idChanged = id !== this.#incomingId;
        return;
      }
      await this.#releaseHeld();
      if (movedTo === undefined) break;
      this.#context.logger.debug(
        `keepsake: session ${id.slice(0, 8)}… was regenerated; following it to ${movedTo.slice(0, 8)}…`,
      );
      id = movedTo;
    }
    // No stored session: a client never chooses its ID (strict mode), so a fresh one is issued,
    // and taken in the store only once there is something to store.
    this.#storedPayload = null;
    this.#issuedNewId = true;
    this.#deferred = true;
    this.id = this.#context.sessionIds.create();
    this.data = new Map();
    this.#meta = this.#context.absoluteLifetime > 0 ? { created: nowSeconds(this.clock) } : {};
  }

  /** Whether a session created at `meta.created` has outlived absoluteLifetime (it then counts as absent). */
  #pastAbsoluteLifetime(meta: SessionMeta, id: string): boolean {
    const { absoluteLifetime, logger } = this.#context;
    if (absoluteLifetime === 0 || meta.created === undefined) return false;
    if (nowSeconds(this.clock) < meta.created + absoluteLifetime) return false;
    logger.debug(
      `keepsake: session ${id.slice(0, 8)}… is older than absoluteLifetime; a new session replaces it`,
    );
    return true;
  }

  async #autoRegenerate(): Promise<void> {
    const { timeToUpdate, regenerateDestroy, clock, logger } = this.#context;
    if (this.#ajax || timeToUpdate === 0) return;
    const now = nowSeconds(clock);
    const last = this.data.get(LAST_REGENERATE_KEY);
    if (typeof last !== 'number') {
      this.data.set(LAST_REGENERATE_KEY, now);
    } else if (last < now - timeToUpdate) {
      logger.debug(
        `keepsake: regenerating session ${this.id.slice(0, 8)}… (older than timeToUpdate)`,
      );
      await this.regenerate(regenerateDestroy);
    }
  }

  /** A fresh ID, locked; 128 random bits never collide in practice, and if they do the stored session is not ours. */
  async #takeFreshId(): Promise<{ id: string; held: Held }> {
    for (;;) {
      const id = this.#context.sessionIds.create();
      const taken = await this.#take(this.#key(id));
      if (taken.payload === null && taken.unreadable === undefined) return { id, held: taken.held };
      await this.#release(taken.held);
    }
  }

  /** Takes the in-process queue slot, then the store lock, within lockWait in all. */
  async #take(key: SessionKey): Promise<{
    held: Held;
    payload: string | null;
    unreadable: string | undefined;
    expiresInMs: number | undefined;
  }> {
    const { queue, protocol, lockWaitMs, driverName, logger } = this.#context;
    const started = performance.now();
    const slot = key.ip === null ? key.id : `${key.id}@${key.ip}`;
    // Uncontended, the queue is taken at once, without a promise to wait on.
    const releaseQueue = queue.tryAcquire(slot) ?? (await queue.acquire(slot, lockWaitMs));
    if (releaseQueue === undefined) {
      publish.lockTimeout(driverName, performance.now() - started);
      throw new SessionLockTimeoutError(lockWaitMs, driverName);
    }
    const queuedMs = performance.now() - started;
    if (queuedMs > 50) {
      logger.debug(
        `keepsake: waited ${Math.round(queuedMs)} ms in-process for session ${key.id.slice(0, 8)}…`,
      );
    }
    try {
      const { lock, payload, unreadable, expiresInMs } = await protocol.acquire(
        key,
        Math.max(0, lockWaitMs - queuedMs),
      );
      publish.lockWait(driverName, performance.now() - started);
      return { held: { lock, releaseQueue }, payload, unreadable, expiresInMs };
    } catch (error) {
      releaseQueue();
      if (error instanceof SessionLockTimeoutError)
        publish.lockTimeout(driverName, performance.now() - started);
      throw error;
    }
  }

  async #release(held: Held): Promise<void> {
    try {
      await this.#context.protocol.release(held.lock);
    } finally {
      held.releaseQueue();
    }
  }

  async #releaseHeld(): Promise<void> {
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) await this.#release(held);
  }

  async #destroyHeld(): Promise<void> {
    const held = this.#held;
    this.#held = undefined;
    if (held === undefined) return;
    try {
      await this.#context.protocol.destroy(held.lock);
    } finally {
      held.releaseQueue();
    }
  }

  /** The payload to store: every value checked again (objects may have changed by reference since set()), within the size limit. */
  #payload(): string {
    let holdsDates = false;
    this.data.forEach((value, key) => {
      if (assertStorable(key, value)) holdsDates = true;
    });
    const meta = this.#meta;
    const data = isEmptyMeta(meta)
      ? this.data
      : new Map(this.data).set(META_KEY, canonicalMeta(meta));
    const payload = serializeWithin(data, holdsDates, 'the session');
    const limit = this.#context.maxPayloadBytes;
    // Each UTF-16 unit is at most 3 UTF-8 bytes: only a long payload needs counting.
    if (payload.length * 3 > limit) {
      const bytes = Buffer.byteLength(payload);
      if (bytes > limit) throw new SessionValueError(oversizeMessage('the session', bytes, limit));
    }
    return payload;
  }

  /** The stored payload as encrypted by the session's ID, with the first key. */
  #encode(payload: string, id: string): string {
    const { cipher, maxPayloadBytes } = this.#context;
    if (cipher === undefined) return payload;
    const envelope = cipher.encrypt(payload, this.#context.storageIds.of(id));
    if (envelope.length > maxPayloadBytes) {
      throw new SessionValueError(
        oversizeMessage('the encrypted session', envelope.length, maxPayloadBytes),
      );
    }
    return envelope;
  }

  /** The data of a stored payload (decrypted first with the encryption option), or undefined after a warning. */
  #parse(stored: string, id: string): Map<string, unknown> | undefined {
    try {
      const { cipher } = this.#context;
      if (cipher === undefined) {
        this.#plaintext = stored;
        this.#staleKey = false;
      } else {
        const { plaintext, staleKey } = cipher.decrypt(stored, this.#context.storageIds.of(id));
        this.#plaintext = plaintext;
        this.#staleKey = staleKey;
      }
      return deserialize(this.#plaintext);
    } catch (error) {
      this.#warnCorrupt(id, error instanceof Error ? error.message : String(error));
      return undefined;
    }
  }

  #warnCorrupt(id: string, reason: string): void {
    this.#context.logger.warn(
      `keepsake: the stored data of session ${id.slice(0, 8)}… is corrupt (${reason}); it was deleted and a new, empty session started.`,
    );
  }

  /**
   * Where a regenerated session moved, while its grace window lasts: the new ID; null for ordinary
   * data; undefined when the window is over; false (after a warning) for a malformed forward.
   */
  #movedTo(data: Map<string, unknown>, id: string): string | null | undefined | false {
    if (!data.has(MOVED_KEY) || data.size !== 1) return null;
    const moved = data.get(MOVED_KEY);
    if (
      !isPlainRecord(moved) ||
      !this.#context.sessionIds.isValid(moved.to) ||
      typeof moved.until !== 'number'
    ) {
      this.#warnCorrupt(id, 'a malformed forwarding record');
      return false;
    }
    if (moved.until < nowSeconds(this.clock)) return undefined;
    const to = this.#context.storageIds.forward(id, moved.to);
    return this.#context.sessionIds.isValid(to) ? to : undefined;
  }

  #key(id: string): SessionKey {
    return {
      id: this.#context.storageIds.of(id),
      ip: this.#context.matchIP ? this.#ip : null,
      clientIp: this.#clientIp,
    };
  }
}

/** Only the details the app gave, without undefined values (they are stored as JSON). */
function pick(details: BindingDetails | undefined): BindingDetails {
  const picked: { clientIp?: string; userAgent?: string } = {};
  if (typeof details?.clientIp === 'string') picked.clientIp = details.clientIp;
  if (typeof details?.userAgent === 'string') picked.userAgent = details.userAgent;
  return picked;
}

/** The meta in one key order, so an unchanged session serializes to the same payload. */
function canonicalMeta(meta: SessionMeta): SessionMeta {
  const { created, lifetime, user, handle, indexedAt, active } = meta;
  const ordered: SessionMeta = {};
  if (created !== undefined) ordered.created = created;
  if (lifetime !== undefined) ordered.lifetime = lifetime;
  if (user !== undefined) ordered.user = user;
  if (handle !== undefined) ordered.handle = handle;
  if (indexedAt !== undefined) ordered.indexedAt = indexedAt;
  if (active !== undefined) ordered.active = active;
  return ordered;
}

function isEmptyMeta(meta: SessionMeta): boolean {
  for (const value of Object.values(meta)) if (value !== undefined) return false;
  return true;
}
