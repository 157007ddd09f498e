/**
 * The redis driver vs connect-redis (express-session + RedisStore on a node-redis client), on the
 * shared Redis. extras() counts the Redis commands each request costs, on a private redis-server so
 * that nobody else's traffic is in the numbers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisStore } from 'connect-redis';
import type { RequestHandler } from 'express';
import { session } from 'keepsake/express';
import { createClient } from 'redis';
import { expressSession, keepsakeCounter, peerCounter } from './array.bench.js';
import type { BenchApp, BenchApps, BenchGroup } from './harness.js';
import { countSequentialRequests, type StoreCounter } from './sequential.js';

const SHARED_PORT = 6379;
/** A spare port for extras()' private server (the test files use 7301–7313). */
const PRIVATE_PORT = 7391;
const SEQUENTIAL_REQUESTS = 1_000;

function uniquePrefix(label: string): string {
  return `bench:${label}:${randomBytes(3).toString('hex')}:`;
}

async function deleteKeys(port: number, prefix: string): Promise<void> {
  const client = createClient({ socket: { host: '127.0.0.1', port } });
  client.on('error', () => {});
  await client.connect();
  try {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1_000 })) {
      if (keys.length > 0) await client.del(keys);
    }
  } finally {
    client.destroy();
  }
}

async function keepsakeRedis(port: number): Promise<BenchApp> {
  const prefix = uniquePrefix('keepsake');
  const middleware = session({
    driver: 'redis',
    savePath: `tcp://127.0.0.1:${port}?prefix=${prefix}`,
  });
  return {
    middleware: middleware as unknown as RequestHandler,
    ...keepsakeCounter,
    close: async () => {
      await middleware.manager.shutdown();
      await deleteKeys(port, prefix);
    },
  };
}

async function connectRedis(port: number): Promise<BenchApp> {
  const prefix = uniquePrefix('connect-redis');
  const client = createClient({ socket: { host: '127.0.0.1', port } });
  client.on('error', () => {});
  await client.connect();
  return {
    middleware: expressSession(new RedisStore({ client, prefix })),
    ...peerCounter,
    close: async () => {
      await deleteKeys(port, prefix);
      client.destroy();
    },
  };
}

export const apps: BenchApps = {
  'keepsake-redis': () => keepsakeRedis(SHARED_PORT),
  'connect-redis': () => connectRedis(SHARED_PORT),
};

export const groups: BenchGroup[] = [
  {
    title: 'redis',
    keepsake: 'keepsake-redis',
    peer: 'connect-redis',
    requires: { name: 'Redis', host: '127.0.0.1', port: SHARED_PORT },
  },
];

/** INFO commandstats of the private server around the measured requests (reset at the start). */
const commandStatsCounter: StoreCounter<Map<string, number>> = {
  start: async () => {
    const client = createClient({ socket: { host: '127.0.0.1', port: PRIVATE_PORT } });
    await client.connect();
    await client.configResetStat();
    client.destroy();
  },
  stop: () => commandStats(PRIVATE_PORT),
};

async function commandStats(port: number): Promise<Map<string, number>> {
  const client = createClient({ socket: { host: '127.0.0.1', port } });
  await client.connect();
  try {
    const stats = new Map<string, number>();
    for (const match of (await client.info('commandstats')).matchAll(
      /^cmdstat_([^:]+):calls=(\d+)/gm,
    )) {
      const name = match[1] ?? '';
      if (!/^(config|info|hello|client)/.test(name)) stats.set(name, Number(match[2]));
    }
    return stats;
  } finally {
    client.destroy();
  }
}

function perRequest(stats: Map<string, number>, count: number): string {
  return [...stats]
    .sort(([, left], [, right]) => right - left)
    .map(([name, calls]) => `${name.toUpperCase()} ${(calls / count).toFixed(2)}`)
    .join(', ');
}

async function startPrivateRedis(): Promise<ChildProcess | undefined> {
  const child = spawn(
    'redis-server',
    ['--port', String(PRIVATE_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const failed = once(child, 'error').then(() => undefined);
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const probe = createClient({
      socket: { host: '127.0.0.1', port: PRIVATE_PORT, reconnectStrategy: false },
    });
    probe.on('error', () => {});
    const connected = await Promise.race([
      probe.connect().then(
        () => true,
        () => false,
      ),
      failed.then(() => false),
    ]);
    if (connected) {
      probe.destroy();
      return child;
    }
    if (child.exitCode !== null) return undefined;
    await sleep(50);
  }
  child.kill('SIGKILL');
  return undefined;
}

/** Redis commands per request on an uncontended session, from INFO commandstats deltas. */
export async function extras(): Promise<string[]> {
  const server = await startPrivateRedis();
  if (server === undefined) {
    return [
      `- redis commands per request: not measured (could not start redis-server on port ${PRIVATE_PORT}).`,
    ];
  }
  try {
    const keepsake = await countSequentialRequests(
      await keepsakeRedis(PRIVATE_PORT),
      SEQUENTIAL_REQUESTS,
      commandStatsCounter,
    );
    const peer = await countSequentialRequests(
      await connectRedis(PRIVATE_PORT),
      SEQUENTIAL_REQUESTS,
      commandStatsCounter,
    );
    const scripts = (keepsake.get('evalsha') ?? 0) + (keepsake.get('eval') ?? 0);
    const peerTotal = [...peer.values()].reduce((sum, calls) => sum + calls, 0);
    return [
      `- **redis round trips per request** (${SEQUENTIAL_REQUESTS} sequential counter requests on one session, INFO commandstats):`,
      `  keepsake-redis **${(scripts / SEQUENTIAL_REQUESTS).toFixed(2)}** (EVALSHA + EVAL; locked read + save-and-unlock, target 2) — ` +
        `commands run inside those scripts: ${perRequest(new Map([...keepsake].filter(([name]) => name !== 'evalsha' && name !== 'eval')), SEQUENTIAL_REQUESTS)}`,
      `  connect-redis **${(peerTotal / SEQUENTIAL_REQUESTS).toFixed(2)}** without any lock (${perRequest(peer, SEQUENTIAL_REQUESTS)})`,
    ];
  } finally {
    if (server.exitCode === null) {
      const exited = once(server, 'exit');
      server.kill('SIGKILL');
      await exited;
    }
  }
}
