import { type ResolvedConfig, resolveConfig, type SessionConfig, storeLifetime } from './config.js';
import { publish } from './diagnostics.js';
import type { DriverContext, SessionDriver, SessionStore } from './drivers/contract.js';
import { SessionStoreError } from './errors.js';
import { type LifecycleContext, type RequestInfo, RequestLifecycle } from './lifecycle.js';
import { LockProtocol } from './lock-protocol.js';
import { KeyedQueue } from './locks.js';
import { INTERNAL, Session, type SessionData } from './session.js';
import { StoreHealth } from './store-health.js';

export { normalizeIp, type RequestInfo } from './lifecycle.js';

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
    return {
      protocol,
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
