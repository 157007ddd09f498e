import { SessionConfigError, SessionStoreError } from '../errors.js';
import type { DriverContext, SessionDriver, SessionStore } from './contract.js';
import { isMemcachedClient, type MemcachedClient } from './memcached/client.js';
import { keyPrefix } from './memcached/keys.js';
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
}

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
