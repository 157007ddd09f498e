import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ResolvedConfig } from '../config.js';
import { SessionError, SessionLockTimeoutError, SessionStoreError } from '../errors.js';
import type {
  HandlerSettings,
  LockedRead,
  SessionHandler,
  SessionKey,
  SessionLock,
} from './contract.js';
import { type RedisConnection, runScript, wrapInjectedClient } from './redis/connection.js';
import { createOwnedConnection } from './redis/create-client.js';
import { sessionKeys } from './redis/keys.js';
import { parseRedisSavePath } from './redis/save-path.js';
import { LOCK_AND_READ, RENEW_LOCK, type RedisScript, SAVE_AND_UNLOCK } from './redis/scripts.js';

/** Lock tokens only have to be unique, not secret: a random per-process part and a counter. */
const TOKEN_PREFIX = randomBytes(9).toString('base64url');
let tokenCounter = 0;

const FIRST_RETRY_MS = 2;
const LONGEST_RETRY_MS = 100;

type FinishMode = 'write' | 'touch' | 'close' | 'destroy';

/**
 * Sessions in Redis (single server, Sentinel or Cluster). One Lua script takes the lock and reads,
 * another writes or touches and unlocks only while the lock still holds this request's token, so an
 * uncontended request costs two round trips. The lock lives `lockTtlMs` and is renewed while held,
 * so a crashed process's lock frees itself quickly. Sessions expire by Redis's own TTL.
 */
export class RedisHandler implements SessionHandler {
  readonly name = 'redis';
  #connection: RedisConnection | undefined;
  #ownsConnection = false;
  #settings: HandlerSettings | undefined;
  #prefix = '';
  /** Renewal timers of the locks this process holds, by lock token. */
  readonly #renewals = new Map<string, NodeJS.Timeout>();

  /** The key prefix in use (after open()). */
  get prefix(): string {
    return this.#prefix;
  }

  async open(settings: HandlerSettings): Promise<void> {
    this.#settings = settings;
    const { connection, savePath } = settings;
    const client =
      connection === undefined || connection === null || typeof connection === 'string'
        ? undefined
        : connection;
    const url = typeof connection === 'string' && connection !== '' ? connection : undefined;
    const fromSavePath =
      savePath === '' ? null : parseRedisSavePath(savePath, 'savePath', client !== undefined);
    const fromUrl = url === undefined ? null : parseRedisSavePath(url, 'connection');
    this.#prefix = fromSavePath?.prefix ?? fromUrl?.prefix ?? `${settings.cookieName}:`;

    if (client !== undefined) {
      this.#connection = wrapInjectedClient(client);
      this.#ownsConnection = false;
      if (fromSavePath?.server) {
        settings.logger.debug(
          `keepsake: the redis driver uses the ${this.#connection.kind} from the connection option; the server in savePath is ignored (only its prefix= counts).`,
        );
      }
      return;
    }
    const target = fromUrl ?? fromSavePath;
    const server = target?.server;
    // Without a client, a server is required: this throws the "no save path" configuration error.
    if (target === null || server === null || server === undefined) {
      parseRedisSavePath('', 'savePath');
      return;
    }
    try {
      this.#connection = await createOwnedConnection(
        { ...target, server },
        settings.ioTimeoutMs,
        settings.logger,
      );
    } catch (error) {
      if (error instanceof SessionError) throw error;
      throw new SessionStoreError(this.name, 'open', error);
    }
    this.#ownsConnection = true;
  }

  async read(key: SessionKey, waitMs: number): Promise<LockedRead> {
    const settings = this.#requireSettings();
    const keys = sessionKeys(this.#prefix, key);
    tokenCounter += 1;
    const token = `${TOKEN_PREFIX}${tokenCounter.toString(36)}`;
    const deadline = performance.now() + waitMs;
    let retryMs = FIRST_RETRY_MS;
    for (;;) {
      const reply = await this.#script(
        'read',
        LOCK_AND_READ,
        [keys.data, keys.lock],
        [token, String(settings.lockTtlMs)],
      );
      if (Array.isArray(reply) && Number(reply[0]) === 1) {
        this.#startRenewing(keys.lock, token);
        const data: unknown = reply[1];
        return { data: typeof data === 'string' ? data : null, lock: { token } };
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw new SessionLockTimeoutError(Math.round(waitMs), this.name);
      await sleep(Math.min(retryMs, remaining));
      retryMs = Math.min(retryMs * 2, LONGEST_RETRY_MS);
    }
  }

  async peek(key: SessionKey): Promise<string | null> {
    const { data } = sessionKeys(this.#prefix, key);
    const reply = await this.#command('peek', data, ['GET', data]);
    return typeof reply === 'string' ? reply : null;
  }

  async write(key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    await this.#finish(key, lock, 'write', data);
  }

  async updateTimestamp(key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    // The payload travels only when the record turned out to be gone (rare): touching is cheap.
    const touched = await this.#finish(key, lock, 'touch', '');
    if (touched === 2) await this.#finish(key, lock, 'write', data);
  }

  async close(key: SessionKey, lock: SessionLock): Promise<void> {
    await this.#finish(key, lock, 'close', '');
  }

  async destroy(key: SessionKey, lock: SessionLock | null): Promise<void> {
    if (lock === null) {
      const { data } = sessionKeys(this.#prefix, key);
      await this.#command('destroy', data, ['DEL', data]);
      return;
    }
    await this.#finish(key, lock, 'destroy', '');
  }

  async validateId(key: SessionKey): Promise<boolean> {
    const { data } = sessionKeys(this.#prefix, key);
    return Number(await this.#command('validateId', data, ['EXISTS', data])) === 1;
  }

  /** Redis expires sessions by their TTL, so there is nothing to collect. */
  async gc(_maxLifetimeSeconds: number): Promise<number> {
    return 0;
  }

  async shutdown(): Promise<void> {
    for (const timer of this.#renewals.values()) clearInterval(timer);
    this.#renewals.clear();
    const connection = this.#connection;
    this.#connection = undefined;
    if (connection !== undefined && this.#ownsConnection) await connection.close();
  }

  /** Runs the save-and-unlock script; answers its reply (1 done, 2 touch found nothing, 0 lock lost). */
  async #finish(
    key: SessionKey,
    lock: SessionLock,
    mode: FinishMode,
    payload: string,
  ): Promise<number> {
    const settings = this.#requireSettings();
    const keys = sessionKeys(this.#prefix, key);
    // A touch that finds no record keeps the lock (for the write that follows), so it keeps renewing.
    if (mode !== 'touch') this.#stopRenewing(lock.token);
    let reply: number;
    try {
      reply = Number(
        await this.#script(
          mode,
          SAVE_AND_UNLOCK,
          [keys.data, keys.lock],
          [lock.token, mode, String(settings.lifetimeSeconds), payload],
        ),
      );
    } catch (error) {
      this.#stopRenewing(lock.token);
      throw error;
    }
    if (reply !== 2) this.#stopRenewing(lock.token);
    if (reply === 0 && (mode === 'write' || mode === 'touch')) {
      throw new SessionStoreError(
        this.name,
        mode,
        new Error(
          `the session lock expired before the save (this process stalled for longer than lockTtl, ${settings.lockTtlMs} ms), ` +
            'so another request may own the session now; the changes were not saved rather than overwrite theirs',
        ),
      );
    }
    return reply;
  }

  #startRenewing(lockKey: string, token: string): void {
    if (this.#renewals.has(token)) return;
    const settings = this.#requireSettings();
    const every = Math.max(10, Math.floor(settings.lockTtlMs / 3));
    const timer = setInterval(() => {
      this.#script('renew', RENEW_LOCK, [lockKey], [token, String(settings.lockTtlMs)]).then(
        (reply) => {
          if (Number(reply) === 1 || !this.#renewals.has(token)) return;
          this.#stopRenewing(token);
          settings.logger.warn(
            `keepsake: the Redis lock ${lockKey} expired while its request was still running; ` +
              'another request may take the session. Raise lockTtl if the event loop stalls for long.',
          );
        },
        (error: unknown) =>
          settings.logger.error(`keepsake: renewing the Redis lock ${lockKey} failed`, error),
      );
    }, every);
    timer.unref();
    this.#renewals.set(token, timer);
  }

  #stopRenewing(token: string): void {
    clearInterval(this.#renewals.get(token));
    this.#renewals.delete(token);
  }

  #script(
    operation: string,
    script: RedisScript,
    keys: readonly [string, ...string[]],
    args: readonly string[],
  ): Promise<unknown> {
    const connection = this.#requireConnection();
    return this.#bounded(operation, () => runScript(connection, script, keys, args));
  }

  #command(operation: string, key: string, args: readonly string[]): Promise<unknown> {
    const connection = this.#requireConnection();
    return this.#bounded(operation, () => connection.send(key, args));
  }

  /** Every call ends within ioTimeoutMs, as a SessionStoreError when it fails or is too slow. */
  async #bounded(operation: string, call: () => Promise<unknown>): Promise<unknown> {
    const { ioTimeoutMs } = this.#requireSettings();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        call(),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer from Redis within ioTimeout (${ioTimeoutMs} ms)`)),
            ioTimeoutMs,
          );
        }),
      ]);
    } catch (error) {
      throw new SessionStoreError(this.name, operation, error);
    } finally {
      clearTimeout(timer);
    }
  }

  #requireConnection(): RedisConnection {
    if (this.#connection === undefined) {
      throw new SessionStoreError(
        this.name,
        'a command',
        new Error('the handler is not open (call open() first, or it was shut down)'),
      );
    }
    return this.#connection;
  }

  #requireSettings(): HandlerSettings {
    if (this.#settings === undefined)
      throw new Error('keepsake: the redis handler was used before open().');
    return this.#settings;
  }
}

export function createHandler(_config: ResolvedConfig): SessionHandler {
  return new RedisHandler();
}
