import { SessionConfigError } from '../../errors.js';
import type { RedisScript } from './scripts.js';

/**
 * The little the redis driver needs from a client, whichever library and topology is behind it.
 * Every command names the key it works on, so a Cluster client can route it to the right node.
 */
export interface RedisConnection {
  /** What is behind it, for logs ("node-redis cluster", "ioredis client"…). */
  readonly kind: string;
  /** Sends one command to the node serving `key`. */
  send(key: string, args: string[]): Promise<unknown>;
  /** Closes the client; called only for clients keepsake created itself. */
  close(): Promise<void>;
}

/** What keepsake uses of a node-redis client (`createClient()` from "redis"). */
export interface NodeRedisClient {
  sendCommand(args: string[]): Promise<unknown>;
  readonly isOpen: boolean;
  close(): Promise<void>;
}

/** What keepsake uses of a node-redis cluster (`createCluster()` from "redis"). */
export interface NodeRedisCluster {
  sendCommand(firstKey: string, isReadonly: boolean, args: string[]): Promise<unknown>;
  readonly isOpen: boolean;
  readonly masters: unknown;
  readonly slots: unknown;
  close(): Promise<void>;
}

/** What keepsake uses of a node-redis sentinel client (`createSentinel()` from "redis"). */
export interface NodeRedisSentinel {
  sendCommand(isReadonly: boolean, args: string[]): Promise<unknown>;
  readonly isOpen: boolean;
  getMasterNode(): unknown;
  close(): Promise<void>;
}

/** What keepsake uses of an ioredis `Redis` or `Cluster`. */
export interface IoRedisClient {
  call(command: string, ...args: string[]): Promise<unknown>;
  readonly status: string;
  readonly isCluster?: boolean;
  quit(): Promise<unknown>;
}

/** A Redis client the application created, of either library and any topology. */
export type RedisClient = NodeRedisClient | NodeRedisCluster | NodeRedisSentinel | IoRedisClient;

function member(value: object, name: string): unknown {
  return (value as Record<string, unknown>)[name];
}

function isIoRedis(value: object): value is IoRedisClient {
  return typeof member(value, 'call') === 'function' && typeof member(value, 'status') === 'string';
}

function isNodeRedis(value: object): boolean {
  return (
    typeof member(value, 'sendCommand') === 'function' &&
    typeof member(value, 'isOpen') === 'boolean'
  );
}

function isNodeRedisCluster(value: object): value is NodeRedisCluster {
  return isNodeRedis(value) && 'masters' in value && 'slots' in value;
}

function isNodeRedisSentinel(value: object): value is NodeRedisSentinel {
  return isNodeRedis(value) && typeof member(value, 'getMasterNode') === 'function';
}

const EXPECTED_CLIENTS =
  'a connected node-redis client, cluster or sentinel (createClient / createCluster / createSentinel from "redis"), ' +
  'an ioredis Redis or Cluster instance, or a Redis URL';

/**
 * Wraps a client the application created. Throws SessionConfigError for anything else, or for a
 * node-redis client that was never connected (node-redis does not connect by itself).
 */
export function wrapInjectedClient(client: RedisClient): RedisConnection {
  if (typeof client !== 'object' || client === null) {
    throw new SessionConfigError('client', `expected ${EXPECTED_CLIENTS}.`);
  }
  if (isIoRedis(client)) {
    const kind = client.isCluster === true ? 'ioredis cluster' : 'ioredis client';
    return {
      kind,
      send: (_key, [command = '', ...args]) => client.call(command, ...args),
      close: async () => {
        await client.quit();
      },
    };
  }
  if (isNodeRedis(client)) {
    if (!(client as unknown as NodeRedisClient).isOpen) {
      throw new SessionConfigError(
        'connection',
        'the node-redis client is not connected; call `await client.connect()` before passing it to keepsake.',
      );
    }
    if (isNodeRedisCluster(client)) {
      return {
        kind: 'node-redis cluster',
        send: (key, args) => client.sendCommand(key, false, args),
        close: () => client.close(),
      };
    }
    if (isNodeRedisSentinel(client)) {
      return {
        kind: 'node-redis sentinel',
        send: (_key, args) => client.sendCommand(false, args),
        close: () => client.close(),
      };
    }
    const single = client as unknown as NodeRedisClient;
    return {
      kind: 'node-redis client',
      send: (_key, args) => single.sendCommand(args),
      close: () => single.close(),
    };
  }
  throw new SessionConfigError(
    'connection',
    `expected ${EXPECTED_CLIENTS}; got an object without sendCommand/isOpen or call/status.`,
  );
}

function isNoScriptError(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/**
 * Runs a Lua script with EVALSHA, falling back to EVAL (which also caches it) when the node has
 * not seen it yet: after a restart, a failover, or on each Cluster node the first time.
 */
export async function runScript(
  connection: RedisConnection,
  script: RedisScript,
  keys: readonly [string, ...string[]],
  args: readonly string[],
): Promise<unknown> {
  const tail = [String(keys.length), ...keys, ...args];
  try {
    return await connection.send(keys[0], ['EVALSHA', script.sha, ...tail]);
  } catch (error) {
    if (!isNoScriptError(error)) throw error;
    return connection.send(keys[0], ['EVAL', script.source, ...tail]);
  }
}
