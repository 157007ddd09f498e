import { nowSeconds } from './clock.js';
import { type ResolvedConfig, resolveConfig, type SessionConfig, storeLifetime } from './config.js';
import { deletionCookie, readCookie, sessionCookie } from './cookie.js';
import {
  SessionClosedError,
  SessionError,
  SessionHeadersSentError,
  SessionStoreError,
} from './errors.js';
import type { SessionHandler, SessionKey, SessionLock } from './handlers/contract.js';
import { loadHandler } from './handlers/registry.js';
import { createSessionId, isValidSessionId } from './id.js';
import { KeyedQueue } from './locks.js';
import { assertStorable, deserialize, serialize } from './serializer.js';
import {
  ageMarkers,
  INTERNAL,
  LAST_REGENERATE_KEY,
  Session,
  type SessionData,
  type SessionInternals,
} from './session.js';

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
}

/** Top-level key of the record left under an old ID after a regeneration: where the session went. */
const MOVED_KEY = '__keepsake_moved';
const MAX_MOVES_FOLLOWED = 3;

interface Held {
  key: SessionKey;
  lock: SessionLock;
  releaseQueue: () => void;
}

interface RequestState {
  held: Held | undefined;
  /** The payload as read from the store; a write happens only when the data serializes differently. */
  storedPayload: string | null;
  incomingId: string | undefined;
  issuedNewId: boolean;
  idChanged: boolean;
  ajax: boolean;
  ip: string;
  committed: boolean;
  headersSent: boolean;
  pending: Promise<void> | undefined;
}

/** Lowercase, and IPv4-mapped IPv6 (::ffff:1.2.3.4) as plain IPv4, so one client keeps one slot. */
export function normalizeIp(ip: string): string {
  const lowered = ip.trim().toLowerCase();
  return lowered.startsWith('::ffff:') && lowered.includes('.') ? lowered.slice(7) : lowered;
}

/**
 * Runs the session lifecycle for adapters: `start()` at the beginning of a request (cookie → ID →
 * lock + read → regenerate → flash/temp step), `commit()` at its end (write or touch → unlock), and
 * `setCookies()` for the response headers.
 */
export class SessionManager {
  readonly config: ResolvedConfig;
  readonly #queue = new KeyedQueue();
  readonly #states = new WeakMap<Session, RequestState>();
  #handler: SessionHandler | undefined;
  #opening: Promise<SessionHandler> | undefined;
  #gcRunning = false;

  constructor(options: SessionConfig = {}) {
    this.config = resolveConfig(options);
  }

  /** Loads and opens the driver; called by the first start(), or earlier to fail fast on a bad savePath. */
  ready(): Promise<SessionHandler> {
    if (this.#handler !== undefined) return Promise.resolve(this.#handler);
    this.#opening ??= (async () => {
      const handler = await loadHandler(this.config);
      await handler.open({
        savePath: this.config.savePath,
        cookieName: this.config.cookieName,
        matchIP: this.config.matchIP,
        lifetimeSeconds: storeLifetime(this.config),
        lockWaitMs: this.config.lockWait,
        lockTtlMs: this.config.lockTtl,
        ioTimeoutMs: this.config.ioTimeout,
        connection: this.config.connection,
        clock: this.config.clock,
        logger: this.config.logger,
      });
      this.#handler = handler;
      return handler;
    })().catch((error: unknown) => {
      this.#opening = undefined;
      throw error;
    });
    return this.#opening;
  }

  /** Starts the session of one request. Rejects with SessionLockTimeoutError or SessionStoreError (→ 503). */
  async start<Data extends SessionData = SessionData>(
    request: RequestInfo,
  ): Promise<Session<Data>> {
    const handler = this.#handler ?? (await this.ready());
    const cookieValue = readCookie(request.cookieHeader, this.config.cookieName);
    const incomingId = isValidSessionId(cookieValue) ? cookieValue : undefined;
    const ip = normalizeIp(request.ip);
    const state: RequestState = {
      held: undefined,
      storedPayload: null,
      incomingId,
      issuedNewId: false,
      idChanged: false,
      ajax: request.ajax,
      ip,
      committed: false,
      headersSent: false,
      pending: undefined,
    };
    const internals: SessionInternals = {
      data: new Map(),
      id: '',
      state: request.readOnly ? 'readOnly' : 'open',
      clock: this.config.clock,
      control: {
        regenerate: (destroy) => this.#regenerate(session, state, destroy),
        destroy: () => this.#destroy(session, state),
        close: () => this.commit(session),
      },
    };
    const session = new Session<SessionData>(internals);
    this.#states.set(session, state);

    if (request.readOnly) {
      await this.#startReadOnly(handler, internals, state);
    } else {
      try {
        await this.#startLocked(handler, internals, state);
        this.#autoRegenerate(session, internals, state);
        if (state.pending !== undefined) await state.pending;
      } catch (error) {
        await this.#abandon(handler, state);
        throw error;
      }
    }
    ageMarkers(internals.data, nowSeconds(this.config.clock));
    this.#gcLottery(handler);
    return session as unknown as Session<Data>;
  }

  /** Writes (or only touches, when unchanged) and unlocks. Idempotent; session.close() calls it early. */
  async commit(session: Session<SessionData> | Session): Promise<void> {
    const state = this.#stateOf(session);
    const internals = session[INTERNAL];
    if (state.committed) return;
    state.committed = true;
    if (internals.state !== 'open') return;
    internals.state = 'closed';
    const held = state.held;
    if (held === undefined) return;
    state.held = undefined;
    const handler = this.#requireHandler();
    let payload: string;
    try {
      // Objects stored by reference may have been changed since set() checked them.
      let holdsDates = false;
      internals.data.forEach((value, key) => {
        if (assertStorable(key, value)) holdsDates = true;
      });
      payload = serialize(internals.data, holdsDates);
    } catch (error) {
      await handler.close(held.key, held.lock).catch(() => {});
      held.releaseQueue();
      throw error;
    }
    try {
      if (payload === state.storedPayload) {
        await handler.updateTimestamp(held.key, held.lock, payload);
      } else {
        await handler.write(held.key, held.lock, payload);
      }
    } catch (error) {
      // The write failed, so the store may still hold our lock: try to free it for the next request.
      await handler.close(held.key, held.lock).catch(() => {});
      throw this.#storeError(handler, 'write', error);
    } finally {
      held.releaseQueue();
    }
  }

  /**
   * The Set-Cookie values for this response. Call it when the headers are being sent: after that,
   * regenerate() throws, because its new cookie could no longer reach the client.
   */
  setCookies(session: Session<SessionData> | Session): string[] {
    const state = this.#stateOf(session);
    const internals = session[INTERNAL];
    state.headersSent = true;
    const { cookieName, cookie, expiration, timeToUpdate, clock } = this.config;
    if (internals.state === 'destroyed') {
      return state.incomingId !== undefined || state.issuedNewId
        ? [deletionCookie(cookieName, cookie)]
        : [];
    }
    if (internals.id === '') return [];
    const refresh = (state.ajax || timeToUpdate === 0) && state.incomingId === internals.id;
    if (state.issuedNewId || state.idChanged || refresh) {
      return [sessionCookie(cookieName, internals.id, expiration, clock(), cookie)];
    }
    return [];
  }

  /** Closes the driver's connections (those it opened itself). */
  async shutdown(): Promise<void> {
    const handler = this.#handler;
    this.#handler = undefined;
    this.#opening = undefined;
    await handler?.shutdown();
  }

  async #startReadOnly(
    handler: SessionHandler,
    internals: SessionInternals,
    state: RequestState,
  ): Promise<void> {
    let id = state.incomingId;
    for (let moves = 0; id !== undefined && moves <= MAX_MOVES_FOLLOWED; moves += 1) {
      const key = this.#key(id, state.ip);
      let payload: string | null;
      try {
        payload = await handler.peek(key);
      } catch (error) {
        throw this.#storeError(handler, 'read', error);
      }
      if (payload === null) return;
      const data = this.#parse(payload, id);
      const movedTo = this.#movedTo(data);
      if (movedTo === null) {
        internals.id = id;
        internals.data = data;
        return;
      }
      id = movedTo;
    }
  }

  async #startLocked(
    handler: SessionHandler,
    internals: SessionInternals,
    state: RequestState,
  ): Promise<void> {
    let id = state.incomingId;
    for (let moves = 0; id !== undefined && moves <= MAX_MOVES_FOLLOWED; moves += 1) {
      const { held, payload } = await this.#lockAndRead(handler, this.#key(id, state.ip));
      if (payload === null) {
        await this.#release(handler, held);
        break;
      }
      const data = this.#parse(payload, id);
      const movedTo = this.#movedTo(data);
      if (movedTo === null) {
        state.held = held;
        state.storedPayload = payload;
        internals.id = id;
        internals.data = data;
        state.idChanged = id !== state.incomingId;
        return;
      }
      await this.#release(handler, held);
      if (movedTo === undefined) break;
      this.config.logger.debug(
        `keepsake: session ${id.slice(0, 8)}… was regenerated; following it to ${movedTo.slice(0, 8)}…`,
      );
      id = movedTo;
    }
    // No stored session: a client never chooses its ID (strict mode), so a fresh one is issued.
    const fresh = await this.#lockFreshId(handler, state.ip);
    state.held = fresh.held;
    state.storedPayload = null;
    state.issuedNewId = true;
    internals.id = fresh.id;
    internals.data = new Map();
  }

  #autoRegenerate(session: Session, internals: SessionInternals, state: RequestState): void {
    const { timeToUpdate, regenerateDestroy, clock } = this.config;
    if (state.ajax || timeToUpdate === 0) return;
    const now = nowSeconds(clock);
    const last = internals.data.get(LAST_REGENERATE_KEY);
    if (typeof last !== 'number') {
      internals.data.set(LAST_REGENERATE_KEY, now);
    } else if (last < now - timeToUpdate) {
      this.config.logger.debug(
        `keepsake: regenerating session ${internals.id.slice(0, 8)}… (older than timeToUpdate)`,
      );
      state.pending = this.#regenerate(session, state, regenerateDestroy);
    }
  }

  async #regenerate(session: Session, state: RequestState, destroyOld: boolean): Promise<void> {
    const internals = session[INTERNAL];
    if (internals.state !== 'open')
      throw new SessionClosedError(internals.state, 'regenerate the session ID');
    if (state.headersSent) throw new SessionHeadersSentError('regenerate the session ID');
    const handler = this.#requireHandler();
    const old = state.held;
    const fresh = await this.#lockFreshId(handler, state.ip);
    const oldId = internals.id;
    state.held = fresh.held;
    state.storedPayload = null;
    internals.id = fresh.id;
    internals.data.set(LAST_REGENERATE_KEY, nowSeconds(this.config.clock));
    // A brand-new session's cookie is already due; otherwise the changed ID must be sent.
    if (!state.issuedNewId) state.idChanged = true;
    if (old === undefined) return;
    try {
      if (destroyOld || this.config.regenerateGrace === 0) {
        await handler.destroy(old.key, old.lock);
      } else {
        // Requests still carrying the old cookie are led to the new ID for the grace window.
        const until = nowSeconds(this.config.clock) + this.config.regenerateGrace;
        await handler.write(
          old.key,
          old.lock,
          serialize(new Map([[MOVED_KEY, { to: fresh.id, until }]])),
        );
      }
    } catch (error) {
      await handler.close(old.key, old.lock).catch(() => {});
      throw this.#storeError(handler, 'regenerate', error);
    } finally {
      old.releaseQueue();
    }
    this.config.logger.debug(
      `keepsake: regenerated ${oldId.slice(0, 8)}… → ${fresh.id.slice(0, 8)}…${destroyOld ? ' (old ID deleted)' : ''}`,
    );
  }

  async #destroy(session: Session, state: RequestState): Promise<void> {
    const internals = session[INTERNAL];
    if (internals.state !== 'open')
      throw new SessionClosedError(internals.state, 'destroy the session');
    internals.state = 'destroyed';
    internals.data.clear();
    state.committed = true;
    const held = state.held;
    state.held = undefined;
    if (held === undefined) return;
    const handler = this.#requireHandler();
    try {
      await handler.destroy(held.key, held.lock);
    } catch (error) {
      await handler.close(held.key, held.lock).catch(() => {});
      throw this.#storeError(handler, 'destroy', error);
    } finally {
      held.releaseQueue();
    }
    this.config.logger.debug(`keepsake: destroyed session ${internals.id.slice(0, 8)}…`);
  }

  async #lockFreshId(handler: SessionHandler, ip: string): Promise<{ id: string; held: Held }> {
    for (;;) {
      const id = createSessionId();
      const { held, payload } = await this.#lockAndRead(handler, this.#key(id, ip));
      if (payload === null) return { id, held };
      // 128 random bits never collide in practice; if they do, the stored session is not ours.
      await this.#release(handler, held);
    }
  }

  async #lockAndRead(
    handler: SessionHandler,
    key: SessionKey,
  ): Promise<{ held: Held; payload: string | null }> {
    const started = performance.now();
    const slot = key.ip === null ? key.id : `${key.id}@${key.ip}`;
    // Uncontended, the queue is taken at once, without a promise to wait on.
    const releaseQueue =
      this.#queue.tryAcquire(slot) ??
      (await this.#queue.acquire(slot, this.config.lockWait, handler.name));
    const queuedMs = performance.now() - started;
    if (queuedMs > 50)
      this.config.logger.debug(
        `keepsake: waited ${Math.round(queuedMs)} ms in-process for session ${key.id.slice(0, 8)}…`,
      );
    try {
      const remaining = Math.max(0, this.config.lockWait - queuedMs);
      const { data, lock } = await handler.read(key, remaining);
      const totalMs = performance.now() - started;
      if (totalMs - queuedMs > 50)
        this.config.logger.debug(
          `keepsake: waited ${Math.round(totalMs - queuedMs)} ms for the store lock of ${key.id.slice(0, 8)}…`,
        );
      return { held: { key, lock, releaseQueue }, payload: data };
    } catch (error) {
      releaseQueue();
      throw this.#storeError(handler, 'read', error);
    }
  }

  /** A start that failed half-way must not leave its lock behind for the next request to wait on. */
  async #abandon(handler: SessionHandler, state: RequestState): Promise<void> {
    const held = state.held;
    state.held = undefined;
    state.committed = true;
    if (held === undefined) return;
    await this.#release(handler, held).catch((error: unknown) =>
      this.config.logger.error('keepsake: releasing the lock of a failed request failed', error),
    );
  }

  async #release(handler: SessionHandler, held: Held): Promise<void> {
    try {
      await handler.close(held.key, held.lock);
    } catch (error) {
      throw this.#storeError(handler, 'close', error);
    } finally {
      held.releaseQueue();
    }
  }

  #parse(payload: string, id: string): Map<string, unknown> {
    try {
      return deserialize(payload);
    } catch (error) {
      this.config.logger.warn(
        `keepsake: the stored data of session ${id.slice(0, 8)}… is corrupt (${error instanceof Error ? error.message : String(error)}); starting it empty.`,
      );
      return new Map();
    }
  }

  /** The ID a regenerated session moved to, while its grace window lasts; null for ordinary data. */
  #movedTo(data: Map<string, unknown>): string | null | undefined {
    const moved = data.get(MOVED_KEY) as { to?: unknown; until?: unknown } | undefined;
    if (moved === undefined || data.size !== 1) return null;
    if (
      isValidSessionId(moved.to) &&
      typeof moved.until === 'number' &&
      moved.until >= nowSeconds(this.config.clock)
    ) {
      return moved.to;
    }
    return undefined;
  }

  #key(id: string, ip: string): SessionKey {
    return { id, ip: this.config.matchIP ? ip : null };
  }

  #gcLottery(handler: SessionHandler): void {
    const { gcProbability, gcDivisor } = this.config;
    if (this.#gcRunning || gcProbability === 0 || Math.random() * gcDivisor >= gcProbability)
      return;
    this.#gcRunning = true;
    setImmediate(() => {
      this.collectGarbage(handler)
        .catch((error: unknown) => this.config.logger.error('keepsake: session GC failed', error))
        .finally(() => {
          this.#gcRunning = false;
        });
    });
  }

  /** Deletes expired sessions now (the lottery calls this off the request path). */
  async collectGarbage(handler?: SessionHandler): Promise<number> {
    const target = handler ?? (await this.ready());
    const started = performance.now();
    const removed = await target.gc(storeLifetime(this.config));
    this.config.logger.debug(
      `keepsake: GC removed ${removed} expired sessions in ${Math.round(performance.now() - started)} ms`,
    );
    return removed;
  }

  #stateOf(session: Session<SessionData> | Session): RequestState {
    const state = this.#states.get(session as Session);
    if (state === undefined)
      throw new Error('keepsake: this session was not started by this manager.');
    return state;
  }

  #requireHandler(): SessionHandler {
    if (this.#handler === undefined)
      throw new Error('keepsake: the session manager was shut down.');
    return this.#handler;
  }

  #storeError(handler: SessionHandler, operation: string, error: unknown): SessionError {
    if (error instanceof SessionError) return error;
    return new SessionStoreError(handler.name, operation, error);
  }
}

/** A session manager for adapters and for using keepsake without a framework. */
export function createSessionManager(options: SessionConfig = {}): SessionManager {
  return new SessionManager(options);
}
