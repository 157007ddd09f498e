import { payloadOfPhpSession, phpSessionOf } from '../codeigniter/payload.js';
import { SessionConfigError, SessionError, SessionStoreError } from '../errors.js';
import type { SessionLogger } from '../log.js';
import type {
  DriverContext,
  LockAttempt,
  SessionDriver,
  SessionKey,
  SessionStore,
  TouchOutcome,
} from './contract.js';
import { requirePeer } from './peer.js';
import {
  type RedisClient,
  type RedisConnection,
  runScript,
  wrapInjectedClient,
} from './redis/connection.js';
import { createOwnedConnection } from './redis/create-client.js';
import { codeIgniterSessionKeys, type RedisSessionKeys, sessionKeys } from './redis/keys.js';
import { parseRedisSavePath, type RedisSavePath } from './redis/save-path.js';
import { FINISH, LOCK_AND_READ, RENEW_LOCK, REVOKE } from './redis/scripts.js';

export type {
  IoRedisClient,
  NodeRedisClient,
  NodeRedisCluster,
  NodeRedisSentinel,
  RedisClient,
} from './redis/connection.js';

export interface RedisDriverOptions {
  /**
   * A client your app created and connected: node-redis (`createClient`, `createCluster`,
   * `createSentinel`) or ioredis (`new Redis()`, `new Cluster()`). keepsake never closes it.
   */
  readonly client?: RedisClient;
  /**
   * Without a client: the server, in CodeIgniter's savePath forms or as a URL —
   * `tcp://host:port?auth=…&database=…&prefix=…&timeout=…`, `tls://…`, `redis://…`, `rediss://…`,
   * `unix:///path`, `/path`, `host:port`. keepsake then creates the client (node-redis) and closes it.
   * With a client, only its `prefix=` counts.
   */
  readonly url?: string;
  /** The key prefix (default `<cookieName>:`); replaces a `prefix=` in the URL. */
  readonly prefix?: string;
  /**
   * 'keepsake' (default): JSON payloads under `<prefix>{<id>}` (a Cluster hash tag).
   * 'codeigniter': the keys of CodeIgniter 4's RedisHandler, shared with a running CodeIgniter
   * app: PHP's session encoding under `<prefix><id>`, and its `<prefix><id>:lock` key taken and
   * honoured. One server or Sentinel (the two keys of a session may sit in different Cluster slots).
   */
  readonly layout?: 'keepsake' | 'codeigniter';
}

/** How long a lock taken in CodeIgniter's layout must stay ours before it counts (see lockAndRead). */
const CODEIGNITER_LOCK_CONFIRM_MS = 10;

/**
 * Sessions in Redis (single server, Sentinel or Cluster). One Lua script takes the lock and reads,
 * another writes, touches, deletes or unlocks only while the lock still holds this request's token,
 * so an uncontended request costs two round trips. Sessions expire by Redis's own TTL.
 */
class RedisStore implements SessionStore {
  readonly #connection: RedisConnection;
  readonly #ownsConnection: boolean;
  readonly #prefix: string;
  readonly #lockTtl: string;
  readonly #codeigniter: boolean;
  readonly #logger: SessionLogger;
  /** CodeIgniter's layout: the PHP session data read under each lock held, by token. */
  readonly #php = new Map<string, string>();

  constructor(
    connection: RedisConnection,
    ownsConnection: boolean,
    prefix: string,
    lockTtlMs: number,
    codeigniter: boolean,
    logger: SessionLogger,
  ) {
    this.#connection = connection;
    this.#ownsConnection = ownsConnection;
    this.#prefix = prefix;
    this.#lockTtl = String(lockTtlMs);
    this.#codeigniter = codeigniter;
    this.#logger = logger;
  }

  #keys(key: SessionKey): RedisSessionKeys {
    return this.#codeigniter
      ? codeIgniterSessionKeys(this.#prefix, key)
      : sessionKeys(this.#prefix, key);
  }

  async lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    const attempt = await this.#lockAndRead(key, token);
    if (!this.#codeigniter || !attempt.locked) return attempt;
    // CodeIgniter 4.1 checks the lock's TTL, then SETEX: a PHP request whose check came just
    // before our SET NX overwrites our lock a round trip later, and both would hold it. The lock
    // counts only once it is still ours after that window; otherwise PHP has it, and we wait.
    await new Promise((resolve) => setTimeout(resolve, CODEIGNITER_LOCK_CONFIRM_MS));
    const { lock } = this.#keys(key);
    if ((await this.#connection.send(lock, ['GET', lock])) !== token) return { locked: false };
    if (attempt.payload === null) return attempt;
    const php = attempt.payload;
    let translated: ReturnType<typeof payloadOfPhpSession>;
    try {
      translated = payloadOfPhpSession(Buffer.from(php, 'utf8'), 'Redis');
    } catch (error) {
      // Left for PHP as it is: only the lock is given back.
      await this.#finish(key, token, 'unlock', 0, '');
      throw error;
    }
    if ('unreadable' in translated) return { locked: true, payload: null, ...translated };
    this.#php.set(token, php);
    return { ...attempt, payload: translated.payload };
  }

  async #lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    const keys = this.#keys(key);
    const reply = await runScript(
      this.#connection,
      LOCK_AND_READ,
      [keys.data, keys.lock],
      [token, this.#lockTtl],
    );
    if (!Array.isArray(reply) || Number(reply[0]) !== 1) return { locked: false };
    const data: unknown = reply[1];
    if (typeof data === 'string') {
      const left = Number(reply[3]);
      // PTTL answers -1 for a key without expiry: keepsake never writes one; touch it then.
      return left > 0
        ? { locked: true, payload: data, expiresInMs: left }
        : { locked: true, payload: data };
    }
    const otherType: unknown = reply[2];
    return typeof otherType === 'string'
      ? {
          locked: true,
          payload: null,
          unreadable: `the Redis key holds a ${otherType}, not a string`,
        }
      : { locked: true, payload: null };
  }

  async renewLock(key: SessionKey, token: string): Promise<boolean> {
    const { lock } = this.#keys(key);
    return (
      Number(await runScript(this.#connection, RENEW_LOCK, [lock], [token, this.#lockTtl])) === 1
    );
  }

  async writeAndUnlock(
    key: SessionKey,
    token: string,
    payload: string,
    lifetimeSeconds: number,
  ): Promise<boolean> {
    if (!this.#codeigniter) {
      return (await this.#finish(key, token, 'write', lifetimeSeconds, payload)) === 1;
    }
    let php: string;
    try {
      php = phpSessionOf(payload, this.#previous(token)).toString('utf8');
    } catch (error) {
      // What PHP cannot hold is the caller's error: the session stays as it was, unlocked.
      await this.#finish(key, token, 'unlock', 0, '');
      throw error;
    }
    return (await this.#finish(key, token, 'write', lifetimeSeconds, php)) === 1;
  }

  async touchAndUnlock(
    key: SessionKey,
    token: string,
    lifetimeSeconds: number,
  ): Promise<TouchOutcome> {
    const reply = await this.#finish(key, token, 'touch', lifetimeSeconds, '');
    return reply === 1 ? 'touched' : reply === 2 ? 'missing' : 'fenced';
  }

  async destroyAndUnlock(key: SessionKey, token: string): Promise<boolean> {
    return (await this.#finish(key, token, 'destroy', 0, '')) === 1;
  }

  async unlock(key: SessionKey, token: string): Promise<void> {
    // A Redis lock leaves nothing but itself behind, so there is nothing to discard.
    await this.#finish(key, token, 'unlock', 0, '');
  }

  /**
   * Deletes the data and the lock in one script (both keys share the ID's hash tag, so one Cluster
   * slot): a keepsake request holding the lock is fenced, since its token matches nothing.
   * CodeIgniter's write checks no lock, so a PHP request holding the lock cannot be fenced: it may
   * store the session again when it ends. Its lock is left in place: deleting it would let another
   * request in while PHP still runs, and PHP's close would then delete that request's lock.
   */
  async revoke(key: SessionKey): Promise<void> {
    const keys = this.#keys(key);
    const reply = await runScript(
      this.#connection,
      REVOKE,
      [keys.data, keys.lock],
      [this.#codeigniter ? '1' : '0'],
    );
    if (Number(reply) === 2) {
      this.#logger.warn(
        `keepsake: revoked session ${key.id.slice(0, 8)}… while a CodeIgniter request held its lock; CodeIgniter's write does not check its lock, so that request may store the session again when it ends.`,
      );
    }
  }

  async peek(key: SessionKey): Promise<string | null> {
    const { data } = this.#keys(key);
    const reply = await this.#connection.send(data, ['GET', data]);
    if (typeof reply !== 'string' || !this.#codeigniter)
      return typeof reply === 'string' ? reply : null;
    const translated = payloadOfPhpSession(Buffer.from(reply, 'utf8'), 'Redis');
    return 'payload' in translated ? translated.payload : null;
  }

  async close(): Promise<void> {
    if (this.#ownsConnection) await this.#connection.close();
  }

  #previous(token: string): Buffer | null {
    const php = this.#php.get(token);
    return php === undefined ? null : Buffer.from(php, 'utf8');
  }

  async #finish(
    key: SessionKey,
    token: string,
    mode: 'write' | 'touch' | 'destroy' | 'unlock',
    lifetimeSeconds: number,
    payload: string,
  ): Promise<number> {
    this.#php.delete(token);
    const keys = this.#keys(key);
    return Number(
      await runScript(
        this.#connection,
        FINISH,
        [keys.data, keys.lock],
        [token, mode, String(Math.max(1, lifetimeSeconds)), payload],
      ),
    );
  }
}

/**
 * The redis driver: `redis({ client })` with your node-redis or ioredis client, or
 * `redis({ url: 'tcp://127.0.0.1:6379' })` for one keepsake creates. Options are checked here, at
 * once; the connection is made when the session manager opens the driver.
 */
export function redis(options: RedisDriverOptions): SessionDriver {
  const { client, url, prefix } = options;
  const layout = options.layout ?? 'keepsake';
  if (layout !== 'keepsake' && layout !== 'codeigniter') {
    throw new SessionConfigError(
      'layout',
      `the redis driver's layout is 'keepsake' or 'codeigniter', got ${JSON.stringify(layout)}.`,
    );
  }
  const codeigniter = layout === 'codeigniter';
  if (prefix !== undefined && (typeof prefix !== 'string' || prefix === '')) {
    throw new SessionConfigError('prefix', 'the redis key prefix must be a non-empty string.');
  }
  const injected = client === undefined ? undefined : wrapInjectedClient(client);
  const parsed: RedisSavePath | null =
    url === undefined || url === '' ? null : parseRedisSavePath(url, 'url', injected !== undefined);
  if (injected === undefined) {
    // Without a client a server is required: this throws the "no save path" configuration error.
    if (parsed === null || parsed.server === null) parseRedisSavePath('', 'url');
    requirePeer('redis', 'the redis driver', 'or pass your own node-redis or ioredis client');
  }
  return {
    name: 'redis',
    async open(context: DriverContext): Promise<SessionStore> {
      const keyPrefix = prefix ?? parsed?.prefix ?? `${context.cookieName}:`;
      if (injected !== undefined) {
        if (parsed?.server) {
          context.logger.debug(
            `keepsake: the redis driver uses the ${injected.kind} it was given; the server in its url is ignored (only prefix= counts).`,
          );
        }
        // The app's client may never have reached its server: ready() must say so now.
        await injected.send(keyPrefix, ['PING']).catch((error: unknown) => {
          throw new SessionStoreError('redis', 'connect', error);
        });
        if (codeigniter && injected.kind.includes('cluster')) {
          throw new SessionConfigError(
            'layout',
            "CodeIgniter's Redis keys carry no Cluster hash tag, so layout: 'codeigniter' needs one Redis server or Sentinel, not a Cluster.",
          );
        }
        return new RedisStore(
          injected,
          false,
          keyPrefix,
          context.lockTtlMs,
          codeigniter,
          context.logger,
        );
      }
      const target = parsed as RedisSavePath & { server: NonNullable<RedisSavePath['server']> };
      try {
        const connection = await createOwnedConnection(target, context.ioTimeoutMs, context.logger);
        return new RedisStore(
          connection,
          true,
          keyPrefix,
          context.lockTtlMs,
          codeigniter,
          context.logger,
        );
      } catch (error) {
        if (error instanceof SessionError) throw error;
        throw new SessionStoreError('redis', 'connect', error);
      }
    },
  };
}
