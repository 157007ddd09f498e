/**
 * The redis driver vs connect-redis (express-session + RedisStore on a node-redis client), on the
 * shared Redis. The counted phase runs on a private redis-server, configured like the shared one
 * (no persistence), and reads its INFO commandstats.
 */
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';
import { keepsakeApp, peerApp } from './array.bench.js';
import type { CountingStore } from './counts.js';
import { type BenchApps, type BenchGroup, type StoreAddress, uniqueName } from './harness.js';
import { startPrivateServer } from './private-server.js';

const SHARED_PORT = 6379;
/** A spare port for the counted phase's private server (the test files use 7301–7313). */
const PRIVATE_PORT = 7391;

async function connected(port: number) {
  const client = createClient({ socket: { host: '127.0.0.1', port } });
  client.on('error', () => {});
  await client.connect();
  return client;
}

async function deleteKeys(port: number, prefix: string): Promise<void> {
  const client = await connected(port);
  try {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1_000 })) {
      if (keys.length > 0) await client.del(keys);
    }
  } finally {
    client.destroy();
  }
}

export const apps: BenchApps = {
  'keepsake-redis': ({ port = SHARED_PORT }: StoreAddress) => {
    const prefix = `${uniqueName('keepsake', ':')}:`;
    return keepsakeApp(
      { driver: 'redis', savePath: `tcp://127.0.0.1:${port}?prefix=${prefix}` },
      () => deleteKeys(port, prefix),
    );
  },
  'connect-redis': async ({ port = SHARED_PORT }: StoreAddress) => {
    const prefix = `${uniqueName('connect-redis', ':')}:`;
    const client = await connected(port);
    return peerApp(new RedisStore({ client, prefix }), async () => {
      await deleteKeys(port, prefix);
      client.destroy();
    });
  },
};

/** Commands of the bench's own connections (connecting, reading the counters), not the apps'. */
const OWN_COMMANDS = /^(config|info|hello|client|ping|select)/;

async function commandStats(port: number): Promise<Map<string, number>> {
  const client = await connected(port);
  try {
    const stats = new Map<string, number>();
    for (const match of (await client.info('commandstats')).matchAll(
      /^cmdstat_([^:]+):calls=(\d+)/gm,
    )) {
      const name = match[1] ?? '';
      if (!OWN_COMMANDS.test(name)) stats.set(name.toUpperCase(), Number(match[2]));
    }
    return stats;
  } finally {
    client.destroy();
  }
}

async function privateRedis(): Promise<CountingStore> {
  const server = await startPrivateServer({
    name: 'redis-server',
    command: 'redis-server',
    args: [
      '--port',
      String(PRIVATE_PORT),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
    ],
    port: PRIVATE_PORT,
  });
  return {
    port: PRIVATE_PORT,
    // INFO commandstats counts the commands a script runs too, beside its EVALSHA.
    commands: () => commandStats(PRIVATE_PORT),
    settleMs: 50,
    stop: () => server.stop(),
  };
}

export const groups: BenchGroup[] = [
  {
    title: 'redis',
    keepsake: 'keepsake-redis',
    peer: 'connect-redis',
    requires: { name: 'Redis', host: '127.0.0.1', port: SHARED_PORT },
    countingStore: privateRedis,
  },
];
