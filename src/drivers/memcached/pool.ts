import { MemcachedConnection } from './connection.js';
import { TaggedRing } from './ring.js';
import type { MemcachedServer } from './save-path.js';

/**
 * The servers of a `servers` list, one connection each, on a weighted ring that routes a key by
 * its `{hash tag}`: a session's item and its lock item always go down the same connection.
 */
export class ServerPool {
  readonly #ring = new TaggedRing<MemcachedConnection>();

  constructor(servers: readonly MemcachedServer[], ioTimeoutMs: number) {
    for (const server of servers) this.#ring.addNode(new MemcachedConnection(server, ioTimeoutMs));
  }

  /** The connection to the server that owns `key`'s hash tag. */
  connectionFor(key: string): MemcachedConnection {
    const connection = this.#ring.nodeFor(key);
    // parseMemcachedSavePath never answers an empty list.
    if (connection === undefined) throw new Error('no memcached server configured');
    return connection;
  }

  async close(): Promise<void> {
    await Promise.all(this.#ring.nodes.map((connection) => connection.close()));
  }
}
