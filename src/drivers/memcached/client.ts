import { SessionConfigError } from '../../errors.js';
import { TaggedRing } from './ring.js';
import type { MemcachedServer } from './save-path.js';

/**
 * What the driver needs from a memcached client; bring your own by passing it as `connection`.
 * Methods must reject when the server cannot be reached (a miss and an outage are not the same),
 * and a multi-server client must send keys with the same `{hash tag}` to the same server, or
 * locking breaks. `exptime` is memcached's: seconds, or a Unix time when above 30 days.
 */
export interface MemcachedClient {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, exptime: number): Promise<boolean>;
  /** Stores only when the key does not exist (atomic); false when it does. */
  add(key: string, value: string, exptime: number): Promise<boolean>;
  /** Sets a new expiry without sending the value; false when the key does not exist. */
  touch(key: string, exptime: number): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  disconnect?(): Promise<void>;
}

export function isMemcachedClient(value: unknown): value is MemcachedClient {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Record<string, unknown>;
  return ['get', 'set', 'add', 'touch', 'delete'].every(
    (method) => typeof candidate[method] === 'function',
  );
}

interface CommandOptions {
  isMultiline?: boolean;
  requestedKeys?: string[];
}

interface Command {
  line: string;
  options?: CommandOptions;
}

/** What `get` asks the parser for: the value of one key. */
const getOne = (key: string): Command => ({
  line: `get ${key}`,
  options: { isMultiline: true, requestedKeys: [key] },
});

/** The part of `memcache`'s MemcacheNode (one connection, text protocol) this client uses. */
interface ProtocolNode {
  readonly id: string;
  readonly weight: number;
  readonly socket:
    | { setTimeout(ms: number): unknown; cork(): void; uncork(): void; destroy(): void }
    | undefined;
  reconnect(): Promise<void>;
  disconnect(): Promise<void>;
  isConnected(): boolean;
  command(line: string, options?: CommandOptions): Promise<unknown>;
}

interface MemcacheModule {
  createNode(host: string, port: number, options: Record<string, unknown>): ProtocolNode;
}

/**
 * The built-in client: `memcache`'s single-server protocol connections behind keepsake's own
 * weighted ring. (The package's multi-server `Memcache` class turns a dead server into cache
 * misses, which would silently start fresh sessions instead of failing with a 503, and hashes the
 * whole key, which could split a session's data and lock across servers.)
 *
 * Commands to one server go down one connection in call order, so the handler may pipeline two
 * commands on the same session without waiting for the first reply.
 */
export class RingClient implements MemcachedClient {
  readonly #ring = new TaggedRing<ProtocolNode>();
  readonly #connecting = new Map<ProtocolNode, Promise<void>>();
  readonly #timeoutMs: number;

  constructor(nodes: readonly ProtocolNode[], timeoutMs: number) {
    for (const node of nodes) this.#ring.addNode(node);
    this.#timeoutMs = timeoutMs;
  }

  async get(key: string): Promise<string | undefined> {
    const [reply] = await this.#pipeline(key, [getOne(key)]);
    return fetchedValue(reply);
  }

  async set(key: string, value: string, exptime: number): Promise<boolean> {
    return this.#store('set', key, value, exptime);
  }

  async add(key: string, value: string, exptime: number): Promise<boolean> {
    return this.#store('add', key, value, exptime);
  }

  async touch(key: string, exptime: number): Promise<boolean> {
    const [reply] = await this.#pipeline(key, [{ line: `touch ${key} ${exptime}` }]);
    return expect(reply, 'TOUCHED', 'NOT_FOUND');
  }

  async delete(key: string): Promise<boolean> {
    const [reply] = await this.#pipeline(key, [{ line: `delete ${key}` }]);
    return expect(reply, 'DELETED', 'NOT_FOUND');
  }

  /**
   * Adds `lockKey` (meta set in add mode, which answers the item's CAS) and reads `dataKey`, sent in
   * one write. `cas` is null when the lock exists already; `data` only counts when it is not.
   */
  async lockAndGet(
    lockKey: string,
    token: string,
    exptime: number,
    dataKey: string,
  ): Promise<{ cas: string | null; data: string | undefined }> {
    const [added, data] = await this.#pipeline(lockKey, [
      { line: `ms ${lockKey} ${Buffer.byteLength(token)} T${exptime} ME c\r\n${token}` },
      getOne(dataKey),
    ]).catch((error: unknown) => {
      if (!(error instanceof Error) || error.message !== 'ERROR') throw error;
      throw new Error(
        'memcached does not know the meta commands (ms/md); the built-in client needs memcached 1.6 or newer',
      );
    });
    if (typeof added === 'string' && added.startsWith('NS')) return { cas: null, data: undefined };
    const cas = typeof added === 'string' ? /^HD c(\d+)$/.exec(added)?.[1] : undefined;
    if (cas === undefined)
      throw new Error(`memcached answered ${JSON.stringify(added)} to a meta set`);
    return { cas, data: fetchedValue(data) };
  }

  /**
   * Stores the data, then deletes the lock only if its CAS is still `cas`, sent in one write.
   * Answers whether the lock was still ours.
   */
  async saveAndUnlock(
    dataKey: string,
    data: string,
    exptime: number,
    lockKey: string,
    cas: string,
  ): Promise<boolean> {
    const [stored, unlocked] = await this.#pipeline(lockKey, [
      storage('set', dataKey, data, exptime),
      { line: `md ${lockKey} C${cas}` },
    ]);
    if (!expect(stored, 'STORED', 'NOT_STORED'))
      throw new Error('memcached did not store the session');
    return metaDeleted(unlocked);
  }

  /**
   * Restarts the data's lifetime and deletes the lock if it is still ours, in one write; answers
   * whether the data was there to touch.
   */
  async touchAndUnlock(
    dataKey: string,
    exptime: number,
    lockKey: string,
    cas: string,
  ): Promise<boolean> {
    const [touched, unlocked] = await this.#pipeline(lockKey, [
      { line: `touch ${dataKey} ${exptime}` },
      { line: `md ${lockKey} C${cas}` },
    ]);
    metaDeleted(unlocked);
    return expect(touched, 'TOUCHED', 'NOT_FOUND');
  }

  /** Deletes the lock only if its CAS is still `cas` (it was not taken over after expiring). */
  async unlock(lockKey: string, cas: string): Promise<boolean> {
    const [unlocked] = await this.#pipeline(lockKey, [{ line: `md ${lockKey} C${cas}` }]);
    return metaDeleted(unlocked);
  }

  async disconnect(): Promise<void> {
    await Promise.all(this.#ring.nodes.map((node) => node.disconnect()));
  }

  async #store(verb: string, key: string, value: string, exptime: number): Promise<boolean> {
    const [reply] = await this.#pipeline(key, [storage(verb, key, value, exptime)]);
    return expect(reply, 'STORED', 'NOT_STORED');
  }

  /**
   * Sends `commands` to the server that owns `routeKey`'s hash tag in one socket write, and answers
   * their replies in order. Written synchronously when connected, so calls made one after another
   * stay in order too.
   */
  #pipeline(routeKey: string, commands: readonly Command[]): Promise<unknown[]> {
    const node = this.#ring.nodeFor(routeKey);
    if (node === undefined) return Promise.reject(new Error('no memcached server configured'));
    const send = () => {
      const socket = node.socket;
      socket?.cork();
      try {
        return Promise.all(commands.map((command) => node.command(command.line, command.options)));
      } finally {
        socket?.uncork();
      }
    };
    const replies = node.isConnected() ? send() : this.#connect(node).then(send);
    return this.#bounded(node, replies);
  }

  /**
   * A server that stops answering (paused, half-open socket) would hold every later command in its
   * queue forever; dropping the connection fails them all at once and the next call reconnects.
   */
  #bounded<Reply>(node: ProtocolNode, reply: Promise<Reply>): Promise<Reply> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Not while connecting: the socket's own timeout fails that attempt, and destroying it
        // here would leave the attempt's promise unsettled. Not node.disconnect() either: the node
        // would reconnect at once, and the old socket's late 'close' event would then mark the new
        // connection closed and fail its commands. Destroyed, the socket closes first.
        if (node.isConnected()) node.socket?.destroy();
        reject(new Error(`no answer from ${node.id} within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
    });
    return Promise.race([reply, timeout]).finally(() => clearTimeout(timer));
  }

  /** One connection attempt per server at a time: concurrent commands share it. */
  #connect(node: ProtocolNode): Promise<void> {
    let connecting = this.#connecting.get(node);
    if (connecting === undefined) {
      // reconnect() also clears the parser state a dropped connection may have left half-filled.
      connecting = node
        .reconnect()
        .then(() => {
          // The socket timeout bounded the connect; once connected, an idle socket may stay open.
          node.socket?.setTimeout(0);
        })
        .finally(() => this.#connecting.delete(node));
      this.#connecting.set(node, connecting);
    }
    return connecting;
  }
}

function storage(verb: string, key: string, value: string, exptime: number): Command {
  return { line: `${verb} ${key} 0 ${exptime} ${Buffer.byteLength(value)}\r\n${value}` };
}

function fetchedValue(reply: unknown): string | undefined {
  return (reply as { values?: string[] } | undefined)?.values?.[0];
}

/** Maps memcached's reply to true/false; anything else is a failure. `memcache` turns NOT_STORED into false. */
function expect(reply: unknown, yes: string, no: string): boolean {
  if (reply === yes) return true;
  if (reply === no || reply === false) return false;
  throw new Error(`memcached answered ${JSON.stringify(reply)}`);
}

/** A meta delete: HD deleted, EX the CAS no longer matches, NF already gone. */
function metaDeleted(reply: unknown): boolean {
  if (reply === 'HD') return true;
  if (reply === 'EX' || reply === 'NF') return false;
  throw new Error(`memcached answered ${JSON.stringify(reply)} to a meta delete`);
}

/** A client over `servers`, routing by hash tag on a weighted consistent-hash ring. */
export async function createMemcachedClient(
  servers: readonly MemcachedServer[],
  timeoutMs: number,
): Promise<RingClient> {
  let memcache: MemcacheModule;
  try {
    memcache = (await import('memcache')) as unknown as MemcacheModule;
  } catch (error) {
    throw new SessionConfigError(
      'driver',
      'the memcached driver needs the "memcache" package: run `npm install memcache@~1.7`, or pass your own client as `connection`.',
      { cause: error },
    );
  }
  const nodes = servers.map((server) =>
    memcache.createNode(server.host, server.port, {
      timeout: timeoutMs,
      weight: server.weight,
    }),
  );
  return new RingClient(nodes, timeoutMs);
}
