/**
 * The memcached driver vs connect-memcached (express-session + MemcachedStore on the `memcached`
 * client), on the shared memcached. The counted phase runs on a private memcached and reads its
 * `stats` counters.
 */
import { createRequire } from 'node:module';
import { createNode } from 'memcache';
import { keepsakeApp, peerApp } from './array.bench.js';
import type { CountingStore } from './counts.js';
import { type BenchApps, type BenchGroup, type StoreAddress, uniqueName } from './harness.js';
import { startPrivateServer } from './private-server.js';

const require = createRequire(import.meta.url);

const SHARED_PORT = 11211;
/** A spare port for the counted phase's private server (the test files use 11411–11421). */
const PRIVATE_PORT = 11491;
/**
 * Seconds the bench's sessions live on both sides. memcached cannot list keys by prefix, so the
 * sessions are not deleted: they leave the shared server by themselves, soon after the run.
 */
const LIFETIME_SECONDS = 300;

interface MemcachedStoreOptions {
  hosts: string[];
  prefix: string;
  ttl: number;
}
type MemcachedStoreClass = new (options: MemcachedStoreOptions) => { client: { end(): void } };

export const apps: BenchApps = {
  'keepsake-memcached': ({ port = SHARED_PORT }: StoreAddress) =>
    keepsakeApp({
      driver: 'memcached',
      savePath: `127.0.0.1:${port}`,
      // The cookie name is also the key prefix: this run's keys cannot meet anyone else's.
      cookieName: uniqueName('keepsake'),
      expiration: LIFETIME_SECONDS,
    }),
  'connect-memcached': async ({ port = SHARED_PORT }: StoreAddress) => {
    const createStore = require('connect-memcached') as (session: object) => MemcachedStoreClass;
    const MemcachedStore = createStore(require('express-session') as object);
    const store = new MemcachedStore({
      hosts: [`127.0.0.1:${port}`],
      prefix: `${uniqueName('connect')}:`,
      ttl: LIFETIME_SECONDS,
    });
    return peerApp(store, async () => store.client.end(), LIFETIME_SECONDS);
  },
};

/** The `stats` counters that tell which commands the sessions cost. */
const COUNTERS = {
  get: ['cmd_get'],
  'set/add': ['cmd_set'],
  touch: ['cmd_touch'],
  delete: ['delete_hits', 'delete_misses'],
  cas: ['cas_hits', 'cas_misses', 'cas_badval'],
} as const;

async function commandCounts(port: number): Promise<Map<string, number>> {
  const node = createNode('127.0.0.1', port, { timeout: 2_000 });
  await node.connect();
  try {
    const stats = (await node.command('stats', { isStats: true })) as Record<string, string>;
    return new Map(
      Object.entries(COUNTERS).map(([name, fields]) => [
        name,
        fields.reduce((sum, field) => sum + Number(stats[field] ?? 0), 0),
      ]),
    );
  } finally {
    await node.disconnect();
  }
}

async function privateMemcached(): Promise<CountingStore> {
  const server = await startPrivateServer({
    name: 'memcached',
    command: 'memcached',
    args: ['-u', 'root', '-l', '127.0.0.1', '-p', String(PRIVATE_PORT), '-m', '64'],
    port: PRIVATE_PORT,
  });
  return {
    port: PRIVATE_PORT,
    commands: () => commandCounts(PRIVATE_PORT),
    settleMs: 50,
    stop: () => server.stop(),
  };
}

export const groups: BenchGroup[] = [
  {
    title: 'memcached',
    keepsake: 'keepsake-memcached',
    peer: 'connect-memcached',
    requires: { name: 'memcached', host: '127.0.0.1', port: SHARED_PORT },
    countingStore: privateMemcached,
  },
];
