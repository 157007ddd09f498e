import { PhpSessionStore } from '../codeigniter/php-session-store.js';
import { SessionConfigError, SessionStoreError } from '../errors.js';
import type { DriverContext, SessionDriver, SessionStore } from './contract.js';
import { isMemcachedClient, type MemcachedClient } from './memcached/client.js';
import { codeIgniterItemLayout } from './memcached/codeigniter-layout.js';
import { CODEIGNITER_KEY_PREFIX, codeIgniterKeyPrefix, keyPrefix } from './memcached/keys.js';
import { MetaStore } from './memcached/meta-store.js';
import { ServerPool } from './memcached/pool.js';
import { PortableStore } from './memcached/portable-store.js';
import { parseMemcachedSavePath } from './memcached/save-path.js';

export type { MemcachedClient } from './memcached/client.js';

export interface MemcachedDriverOptions {
  /** `host:port[:weight][,host:port[:weight]…]`; keepsake creates the connections and closes them. */
  readonly servers?: string;
  /** Or your own client (see MemcachedClient); keepsake never closes it. */
  readonly client?: MemcachedClient;
  /**
   * 'keepsake' (default): JSON payloads under `<cookieName>:{<id>}`. 'codeigniter': the items of
   * CodeIgniter 4's MemcachedHandler, shared with a running CodeIgniter app: PHP's session
   * encoding under `<prefix><id>`, and its `<prefix><id>:lock` item taken (with `add`) and
   * honoured. One server, reached by keepsake's own client.
   */
  readonly layout?: 'keepsake' | 'codeigniter';
  /**
   * CodeIgniter's layout: the key prefix, as CodeIgniter's MemcachedHandler builds it. Default
   * `'ci_session:'` (CodeIgniter 4.1, whatever the cookie name); CodeIgniter 4.4 and later use
   * `'ci_session:<cookieName>:'`. Printable ASCII without spaces. keepsake's layout names its keys
   * after the cookie name and refuses this option.
   */
  readonly prefix?: string;
  /**
   * CodeIgniter's layout: how long (ms) a lock keepsake took must stay its own before it counts
   * (default 10). It must cover the time between a PHP request's get and set of the lock (one
   * round trip to memcached from the PHP server): raise it when PHP reaches memcached slowly.
   */
  readonly lockConfirmMs?: number;
}

/** How long a lock taken in CodeIgniter's layout must stay ours before it counts, unless lockConfirmMs says. */
const CODEIGNITER_LOCK_CONFIRM_MS = 10;

/**
 * The largest payload served by default: with its key and memcached's item header it fits the
 * default 1 MB item limit (`-I 1m`) with about 48 KB to spare, and it is read back in milliseconds.
 */
const MAX_PAYLOAD_BYTES = 1_000_000;

/**
 * The memcached driver: `memcached({ servers: '127.0.0.1:11211' })`, a weighted pool
 * (`'10.0.0.1:11211:2,10.0.0.2:11211:1'`) reached by keepsake's own client with meta commands
 * (memcached ≥ 1.6), or `memcached({ client })` with a client of yours. Options are checked here, at
 * once; connections are made by the first requests.
 */
export function memcached(options: MemcachedDriverOptions): SessionDriver {
  const { servers, client } = options;
  const layout = options.layout ?? 'keepsake';
  if (layout !== 'keepsake' && layout !== 'codeigniter') {
    throw new SessionConfigError(
      'layout',
      `the memcached driver's layout is 'keepsake' or 'codeigniter', got ${JSON.stringify(layout)}.`,
    );
  }
  const confirmMs = options.lockConfirmMs ?? CODEIGNITER_LOCK_CONFIRM_MS;
  if (!Number.isInteger(confirmMs) || confirmMs < 0 || confirmMs > 10_000) {
    throw new SessionConfigError(
      'lockConfirmMs',
      `expected a whole number of milliseconds from 0 to 10 000, got ${String(options.lockConfirmMs)}.`,
    );
  }
  if (layout === 'codeigniter') {
    const prefix = codeIgniterKeyPrefix(options.prefix ?? CODEIGNITER_KEY_PREFIX);
    return codeIgniterMemcached(servers, client, confirmMs, prefix);
  }
  if (options.prefix !== undefined) {
    throw new SessionConfigError(
      'prefix',
      "the key prefix is an option of layout: 'codeigniter'; keepsake's layout names its keys after cookieName.",
    );
  }
  if (client !== undefined && client !== null) {
    if (!isMemcachedClient(client)) {
      throw new SessionConfigError(
        'client',
        'expected a memcached client with get, set, add, touch and delete methods (a `memcache` Memcache instance, for one), or leave it out and list the servers.',
      );
    }
    if (servers !== undefined && servers.trim() !== '') {
      throw new SessionConfigError(
        'servers',
        'give the servers or a client, not both: with a client, its own servers are used.',
      );
    }
    return {
      name: 'memcached',
      maxPayloadBytes: MAX_PAYLOAD_BYTES,
      async open(context: DriverContext): Promise<SessionStore> {
        const prefix = keyPrefix(context.cookieName);
        // The app's client may never have reached its server: ready() must say so now.
        await client.get(`${prefix}keepsake-ready`).catch((error: unknown) => {
          throw new SessionStoreError('memcached', 'connect', error);
        });
        return new PortableStore(client, prefix, context.lockTtlMs);
      },
    };
  }
  const parsed = parseMemcachedSavePath(servers ?? '', 'servers');
  return {
    name: 'memcached',
    maxPayloadBytes: MAX_PAYLOAD_BYTES,
    async open(context: DriverContext): Promise<SessionStore> {
      const prefix = keyPrefix(context.cookieName);
      return new MetaStore(new ServerPool(parsed, context.ioTimeoutMs), prefix, context.lockTtlMs);
    },
  };
}

/**
 * CodeIgniter's layout on one server. CodeIgniter 4.1 takes its lock by get, then set: a PHP
 * request whose get came just before keepsake's add overwrites keepsake's lock a round trip later,
 * and both would hold it. A lock keepsake took counts only once it is still its own after that
 * window (renewed on its CAS); otherwise PHP has it, and keepsake waits.
 */
function codeIgniterMemcached(
  servers: string | undefined,
  client: MemcachedClient | undefined,
  confirmMs: number,
  prefix: string,
): SessionDriver {
  if (client !== undefined && client !== null) {
    throw new SessionConfigError(
      'client',
      "layout: 'codeigniter' needs keepsake's own client, which stores the client flags PHP reads a value's type from; list the server in `servers` instead.",
    );
  }
  const parsed = parseMemcachedSavePath(servers ?? '', 'servers');
  if (parsed.length > 1) {
    throw new SessionConfigError(
      'servers',
      "layout: 'codeigniter' needs one memcached server: PHP's memcached client spreads keys over several servers its own way (by the whole key), so keepsake would look for a session on another server than PHP. Give one server.",
    );
  }
  return {
    name: 'memcached',
    maxPayloadBytes: MAX_PAYLOAD_BYTES,
    async open(context: DriverContext): Promise<SessionStore> {
      const inner = new MetaStore(
        new ServerPool(parsed, context.ioTimeoutMs),
        '',
        context.lockTtlMs,
        codeIgniterItemLayout(context.lockTtlMs, prefix),
      );
      return new PhpSessionStore(inner, 'memcached', async (key, token) => {
        await new Promise((resolve) => setTimeout(resolve, confirmMs));
        return inner.renewLock(key, token);
      });
    },
  };
}
