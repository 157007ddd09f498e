import type { SessionDriver } from '../../src/drivers/contract.js';
import { database } from '../../src/drivers/database.js';
import { file } from '../../src/drivers/file.js';
import { memcached } from '../../src/drivers/memcached.js';
import { redis } from '../../src/drivers/redis.js';
import { sqlite } from '../../src/drivers/sqlite.js';

/** A driver described in JSON, so a child process can build the same one as its parent. */
export type DriverSpec =
  | { readonly kind: 'file'; readonly directory: string; readonly lock: 'flock' | 'mkdir' }
  | { readonly kind: 'database'; readonly url: string; readonly table: string }
  | { readonly kind: 'redis'; readonly url: string }
  | { readonly kind: 'memcached'; readonly servers: string }
  | { readonly kind: 'sqlite'; readonly path: string };

export function driverOf(spec: DriverSpec): SessionDriver {
  switch (spec.kind) {
    case 'file':
      return file({ directory: spec.directory, lock: spec.lock });
    case 'database':
      return database({ connection: spec.url, table: spec.table });
    case 'redis':
      return redis({ url: spec.url });
    case 'memcached':
      return memcached({ servers: spec.servers });
    case 'sqlite':
      return sqlite({ path: spec.path });
  }
}
