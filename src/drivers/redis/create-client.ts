import type { RedisClientOptions } from 'redis';
import { SessionConfigError } from '../../errors.js';
import type { SessionLogger } from '../../log.js';
import type { RedisConnection } from './connection.js';
import type { RedisSavePath, RedisServerAddress } from './save-path.js';

/** Delay before the n-th reconnect attempt: fast at first, never more than half a second, so service returns within a second of Redis. */
export function reconnectDelayMs(retries: number): number {
  return Math.min(20 * 2 ** retries, 500);
}

type NodeRedisModule = typeof import('redis');

async function loadNodeRedis(): Promise<NodeRedisModule> {
  try {
    return await import('redis');
  } catch (error) {
    throw new SessionConfigError(
      'driver',
      'the redis driver creates its client with the "redis" package (node-redis), which is not installed: ' +
        'run `npm install redis`, or pass your own node-redis or ioredis client as the connection option.',
      { cause: error },
    );
  }
}

function describeServer(server: RedisServerAddress): string {
  return server.kind === 'unix'
    ? `unix://${server.path}`
    : `${server.tls ? 'tls' : 'tcp'}://${server.host}:${server.port}`;
}

/**
 * Creates and connects a node-redis client for a parsed save path. The client fails commands at
 * once while disconnected (no offline queue, so nothing piles up during an outage) and reconnects
 * by itself. Rejects (after destroying the client) when it cannot connect within `connectTimeoutMs`.
 */
export async function createOwnedConnection(
  savePath: RedisSavePath & { readonly server: RedisServerAddress },
  connectTimeoutMs: number,
  logger: SessionLogger,
): Promise<RedisConnection> {
  const { createClient } = await loadNodeRedis();
  const { server } = savePath;
  const timeoutMs = savePath.timeoutSeconds > 0 ? savePath.timeoutSeconds * 1000 : connectTimeoutMs;
  const common = { connectTimeout: timeoutMs, reconnectStrategy: reconnectDelayMs };
  const socket: RedisClientOptions['socket'] =
    server.kind === 'unix'
      ? { ...common, path: server.path }
      : server.tls
        ? { ...common, host: server.host, port: server.port, tls: true, servername: server.host }
        : { ...common, host: server.host, port: server.port };
  const client = createClient({
    socket,
    ...(savePath.username === null ? {} : { username: savePath.username }),
    ...(savePath.password === null ? {} : { password: savePath.password }),
    database: savePath.database,
    disableOfflineQueue: true,
    // The handler bounds every call by ioTimeout itself; node-redis's own per-command timeout
    // (an AbortSignal per command) would only add work.
    commandOptions: { timeout: 0 },
  });
  const where = describeServer(server);
  let connected = false;
  let failing = false;
  client.on('error', (error: unknown) => {
    // One line per outage, not one per reconnect attempt; before the first connection the
    // failed connect itself is reported (ready() rejects), so nothing is logged here.
    if (failing || !connected) return;
    failing = true;
    logger.error(`keepsake: lost the Redis connection to ${where}; reconnecting`, error);
  });
  client.on('ready', () => {
    connected = true;
    if (!failing) return;
    failing = false;
    logger.warn(`keepsake: reconnected to Redis at ${where}.`);
  });

  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`could not connect to ${where} within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } catch (error) {
    destroyQuietly(client);
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return {
    kind: `node-redis client for ${where}`,
    send: (_key, args) => client.sendCommand(args),
    close: async () => {
      if (!client.isOpen) return;
      // close() waits for replies still due; an unreachable server would make it wait forever.
      let closeTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        client.close(),
        new Promise<void>((resolve) => {
          closeTimer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(closeTimer);
      destroyQuietly(client);
    },
  };
}

function destroyQuietly(client: { destroy(): void }): void {
  try {
    client.destroy();
  } catch {
    // Already closed: nothing left to free.
  }
}
