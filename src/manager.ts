import { nowSeconds } from './clock.js';
import { type ResolvedConfig, resolveConfig, type SessionConfig, storeLifetime } from './config.js';
import { publish } from './diagnostics.js';
import type { DriverContext, SessionDriver, SessionStore } from './drivers/contract.js';
import { SessionStoreError } from './errors.js';
import {
  type LifecycleContext,
  MOVED_KEY,
  normalizeIp,
  type RequestInfo,
  RequestLifecycle,
} from './lifecycle.js';
import { LockProtocol } from './lock-protocol.js';
import { KeyedQueue } from './locks.js';
import { isPlainRecord, takeMeta } from './markers.js';
import { deserialize } from './serializer.js';
import { INTERNAL, Session, type SessionData } from './session.js';
import { StoreHealth } from './store-health.js';
import { UserIndex } from './user-index.js';

export { normalizeIp, type RequestInfo } from './lifecycle.js';

/** One of a user's live sessions, as `manager.sessionsOf()` lists it. */
export interface UserSession {
  /** Names the session in `revoke({ userId, handle })`; the same as its `session.boundUser().handle`. Not its ID. */
  readonly handle: string;
  readonly created: Date;
  /** Its last request, to within `touchAfter` of its lifetime (as precise as its touches). */
  readonly lastActive: Date;
  /** What the app recorded with bindUser(), if anything. */
  readonly clientIp?: string;
  readonly userAgent?: string;
}

/** A regenerated session's old ID leads to its new one; revoking the old ID follows that far. */
const MAX_MOVES_REVOKED = 3;

/** Opening a driver (connect, check the table or directory) may take this many IO timeouts. */
const OPEN_TIMEOUT_IO_TIMEOUTS = 3;
/**
 * After a failed open, requests answer 503 at once for this long instead of each waiting for
 * another connection attempt; then the next request tries again.
 */
const OPEN_RETRY_AFTER_MS = 1_000;

/**
 * Opens `driver`, failing with SessionStoreError after `timeoutMs`: a store that cannot be
 * reached must fail ready() fast, not hang it. A store that opens after that is closed again.
 */
async function openWithin(
  driver: SessionDriver,
  context: DriverContext,
  timeoutMs: number,
): Promise<SessionStore> {
  const opening = driver.open(context);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new SessionStoreError(
            driver.name,
            'open',
            new Error(`the store did not answer within ${timeoutMs} ms (3 × ioTimeout)`),
          ),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([opening, timeout]);
  } catch (error) {
    opening
      .then(
        (late) => late.close(),
        () => {},
      )
      .catch(() => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs sessions for adapters, or for code without a framework: `start()` at the beginning of a
 * request, `commit()` at its end, `setCookies()` for the response headers. It holds the
 * configuration, the opened driver, the in-process queue per session, and the GC lottery; each
 * request's own state lives in its lifecycle (see lifecycle.ts).
 */
export class SessionManager {
  readonly config: ResolvedConfig;
  readonly #queue = new KeyedQueue();
  #context: LifecycleContext | undefined;
  #opening: Promise<LifecycleContext> | undefined;
  /** The last failure to open the driver, answered again until OPEN_RETRY_AFTER_MS has passed. */
  #openFailure: { readonly error: unknown; readonly at: number } | undefined;
  #health: StoreHealth | undefined;
  #gcRunning = false;

  constructor(options: SessionConfig = {}) {
    this.config = resolveConfig(options);
  }

  /**
   * Opens the driver: connects, and checks what needs I/O (the directory, the table, the server).
   * The first request does it otherwise; await it at startup to fail fast on a bad setting.
   */
  async ready(): Promise<void> {
    await this.#open();
  }

  /** Starts the session of one request. Rejects with SessionLockTimeoutError or SessionStoreError (→ 503). */
  async start<Data extends SessionData = SessionData>(
    request: RequestInfo,
  ): Promise<Session<Data>> {
    const context = this.#context ?? (await this.#open());
    const lifecycle = new RequestLifecycle(context, request);
    await lifecycle.start();
    this.#gcLottery(context);
    return new Session<Data>(lifecycle);
  }

  /** The cache headers for this response (PHP's session.cache_limiter); none when the request has no session. */
  cacheHeaders(session: Session<SessionData> | Session): readonly (readonly [string, string])[] {
    return lifecycleOf(session).cacheHeaders();
  }

  /** Writes (or only touches, when unchanged) and unlocks. Idempotent; session.close() calls it early. */
  commit(session: Session<SessionData> | Session): Promise<void> {
    return lifecycleOf(session).commit();
  }

  /**
   * The Set-Cookie values for this response. Call it when the headers are being sent: after that,
   * regenerate() throws, because its new cookie could no longer reach the client.
   */
  setCookies(session: Session<SessionData> | Session): string[] {
    return lifecycleOf(session).cookies();
  }

  /**
   * The live sessions bound to `userId` (session.bindUser()), most recently active first: for a
   * "your devices" page. Needs no index of its own in the store: it reads the user's index record
   * and each session it names.
   */
  async sessionsOf(userId: string): Promise<UserSession[]> {
    const context = this.#context ?? (await this.#open());
    const entries = await context.userIndex.read(userId);
    const listed = await Promise.all(
      [...entries].map(async ([handle, entry]): Promise<UserSession | undefined> => {
        const stored = await context.protocol.peek({ id: entry.key, ip: entry.ip });
        const meta = stored === null ? undefined : this.#metaOf(stored, entry.key);
        if (meta?.user !== userId || meta.handle !== handle) return undefined;
        const created = meta.created ?? entry.created;
        const { absoluteLifetime } = this.config;
        if (absoluteLifetime > 0 && created + absoluteLifetime <= nowSeconds(this.config.clock))
          return undefined;
        return {
          handle,
          created: new Date(created * 1000),
          lastActive: new Date((meta.active ?? entry.indexedAt) * 1000),
          ...(entry.clientIp === undefined ? {} : { clientIp: entry.clientIp }),
          ...(entry.userAgent === undefined ? {} : { userAgent: entry.userAgent }),
        };
      }),
    );
    return listed
      .filter((session) => session !== undefined)
      .sort((a, b) => b.lastActive.getTime() - a.lastActive.getTime());
  }

  /**
   * Ends one session now: by its ID (with matchIP, also the client IP it is bound to), or by its
   * user and handle from sessionsOf(). Its next request starts a new, empty session, and a request
   * of it that is in flight or waiting for its lock cannot save it back. Answers whether a session
   * was found.
   */
  async revoke(
    target: string | { readonly userId: string; readonly handle: string },
    options: { readonly ip?: string } = {},
  ): Promise<boolean> {
    const context = this.#context ?? (await this.#open());
    if (typeof target !== 'string') {
      return context.userIndex.update(target.userId, async (entries) => {
        const entry = entries.get(target.handle);
        if (entry === undefined) return false;
        await context.protocol.revoke({ id: entry.key, ip: entry.ip }, this.config.lockWait);
        entries.delete(target.handle);
        return true;
      });
    }
    if (this.config.matchIP && options.ip === undefined) {
      throw new TypeError(
        'keepsake: with matchIP, a session is stored per client IP: pass revoke(sessionId, { ip }), or revoke({ userId, handle }) from sessionsOf().',
      );
    }
    const ip = this.config.matchIP ? normalizeIp(options.ip ?? '') : null;
    let found = false;
    let id: string | undefined = target;
    for (let moves = 0; id !== undefined && moves <= MAX_MOVES_REVOKED; moves += 1) {
      if (!context.sessionIds.isValid(id)) break;
      const key = { id: context.storageIds.of(id), ip };
      const stored = await context.protocol.peek(key);
      await context.protocol.revoke(key, this.config.lockWait);
      if (stored === null) break;
      found = true;
      const meta = this.#metaOf(stored, key.id);
      const { user, handle } = meta ?? {};
      if (user !== undefined && handle !== undefined)
        await context.userIndex.update(user, (entries) => entries.delete(handle));
      id = this.#movedTo(stored, key.id, id);
    }
    return found;
  }

  /**
   * Ends every session bound to `userId` ("log out everywhere"), except those named in `except`
   * by session ID or handle ("…but keep this device"). Answers how many were ended.
   */
  async revokeAll(
    userId: string,
    options: { readonly except?: string | readonly string[] } = {},
  ): Promise<number> {
    const context = this.#context ?? (await this.#open());
    const except = typeof options.except === 'string' ? [options.except] : (options.except ?? []);
    const kept = new Set(except);
    for (const name of except)
      if (context.sessionIds.isValid(name)) kept.add(context.storageIds.of(name));
    return context.userIndex.update(userId, async (entries) => {
      const ended = [...entries].filter(
        ([handle, entry]) => !kept.has(handle) && !kept.has(entry.key),
      );
      await Promise.all(
        ended.map(([, entry]) =>
          context.protocol.revoke({ id: entry.key, ip: entry.ip }, this.config.lockWait),
        ),
      );
      for (const [handle] of ended) entries.delete(handle);
      return ended.length;
    });
  }

  /** keepsake's facts in a stored session (decrypted with its store key); undefined when unreadable. */
  #metaOf(stored: string, storeKey: string): ReturnType<typeof takeMeta> | undefined {
    try {
      const { cipher } = this.config;
      const plaintext = cipher === undefined ? stored : cipher.decrypt(stored, storeKey).plaintext;
      return takeMeta(deserialize(plaintext));
    } catch {
      return undefined;
    }
  }

  /** Where a stored forwarding record (a regenerated session's old ID) leads, if it is one. */
  #movedTo(stored: string, storeKey: string, id: string): string | undefined {
    try {
      const { cipher, storageIds } = this.config;
      const plaintext = cipher === undefined ? stored : cipher.decrypt(stored, storeKey).plaintext;
      const moved = deserialize(plaintext).get(MOVED_KEY);
      if (!isPlainRecord(moved) || typeof moved.to !== 'string') return undefined;
      return storageIds.forward(id, moved.to);
    } catch {
      return undefined;
    }
  }

  /** Deletes expired sessions now (the lottery calls this off the request path). */
  async collectGarbage(): Promise<number> {
    const { protocol } = this.#context ?? (await this.#open());
    const started = performance.now();
    const removed = await protocol.gc(storeLifetime(this.config));
    publish.gc(this.config.driver.name, removed, performance.now() - started);
    this.config.logger.debug(
      `keepsake: GC removed ${removed} expired sessions in ${Math.round(performance.now() - started)} ms`,
    );
    return removed;
  }

  /** Closes the driver's connections (those it opened itself). */
  async shutdown(): Promise<void> {
    const opening = this.#opening;
    this.#context = undefined;
    this.#opening = undefined;
    const context = await opening?.catch(() => undefined);
    await context?.protocol.close();
  }

  #open(): Promise<LifecycleContext> {
    if (this.#context !== undefined) return Promise.resolve(this.#context);
    const failure = this.#openFailure;
    if (failure !== undefined && performance.now() - failure.at < OPEN_RETRY_AFTER_MS) {
      return Promise.reject(failure.error);
    }
    this.#opening ??= this.#openDriver().then(
      (context) => {
        this.#context = context;
        this.#openFailure = undefined;
        this.#healthOf().succeeded();
        return context;
      },
      (error: unknown) => {
        this.#opening = undefined;
        this.#openFailure = { error, at: performance.now() };
        // A bad setting is the app's to fix; an unreachable store is an outage to report.
        if (error instanceof SessionStoreError) this.#healthOf().failed('open', error.cause);
        throw error;
      },
    );
    return this.#opening;
  }

  #warnedSecureOverHttp = false;

  #warnSecureOverHttp(): void {
    if (this.#warnedSecureOverHttp) return;
    this.#warnedSecureOverHttp = true;
    this.config.logger.warn(
      "keepsake: cookie.secure is true but a request came over plain HTTP: browsers do not keep a Secure cookie from it, so its session will not last. Serve over HTTPS, or use cookie.secure: 'auto' behind a proxy that ends TLS (with the framework's trust-proxy setting).",
    );
  }

  #healthOf(): StoreHealth {
    this.#health ??= new StoreHealth(this.config.driver.name, this.config.logger);
    return this.#health;
  }

  async #openDriver(): Promise<LifecycleContext> {
    const config = this.config;
    const lifetimeSeconds = storeLifetime(config);
    const store = await openWithin(
      config.driver,
      {
        cookieName: config.cookieName,
        matchIP: config.matchIP,
        lifetimeSeconds,
        lockTtlMs: config.lockTtl,
        ioTimeoutMs: config.ioTimeout,
        clock: config.clock,
        logger: config.logger,
      },
      OPEN_TIMEOUT_IO_TIMEOUTS * config.ioTimeout,
    );
    const protocol = new LockProtocol(store, {
      driver: config.driver.name,
      lockTtlMs: config.lockTtl,
      ioTimeoutMs: config.ioTimeout,
      logger: config.logger,
      health: this.#healthOf(),
    });
    const userIndex = new UserIndex({
      protocol,
      queue: this.#queue,
      storageIds: config.storageIds,
      cipher: config.cipher,
      clock: config.clock,
      lockWaitMs: config.lockWait,
      driverName: config.driver.name,
    });
    return {
      protocol,
      userIndex,
      queue: this.#queue,
      driverName: config.driver.name,
      cookieName: config.cookieName,
      cookie: config.cookie,
      onSecureCookieOverHttp: () => this.#warnSecureOverHttp(),
      cacheLimiter: config.cacheLimiter,
      cacheExpire: config.cacheExpire,
      expiration: config.expiration,
      lifetimeSeconds,
      matchIP: config.matchIP,
      timeToUpdate: config.timeToUpdate,
      regenerateDestroy: config.regenerateDestroy,
      regenerateGraceSeconds: config.regenerateGrace,
      lockWaitMs: config.lockWait,
      maxPayloadBytes: config.maxPayloadBytes,
      absoluteLifetime: config.absoluteLifetime,
      cipher: config.cipher,
      storageIds: config.storageIds,
      browserSessionLifetimeSeconds: config.gcMaxLifetime,
      createEmptySessions: config.createEmptySessions,
      touchAfter: config.touchAfter,
      clock: config.clock,
      logger: config.logger,
      sessionIds: config.sessionId,
    };
  }

  #gcLottery(context: LifecycleContext): void {
    const { gcProbability, gcDivisor, logger } = this.config;
    if (this.#gcRunning || gcProbability === 0 || Math.random() * gcDivisor >= gcProbability)
      return;
    this.#gcRunning = true;
    setImmediate(() => {
      const started = performance.now();
      context.protocol
        .gc(storeLifetime(this.config))
        .then((removed) => {
          publish.gc(this.config.driver.name, removed, performance.now() - started);
          logger.debug(`keepsake: GC removed ${removed} expired sessions`);
        })
        .catch((error: unknown) => logger.error('keepsake: session GC failed', error))
        .finally(() => {
          this.#gcRunning = false;
        });
    });
  }
}

function lifecycleOf(session: Session<SessionData> | Session): RequestLifecycle {
  const internals = session[INTERNAL];
  if (!(internals instanceof RequestLifecycle))
    throw new Error('keepsake: this session was not started by a session manager.');
  return internals;
}

/** A session manager for adapters and for using keepsake without a framework. */
export function createSessionManager(options: SessionConfig = {}): SessionManager {
  return new SessionManager(options);
}
