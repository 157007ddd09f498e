/**
 * The memcached driver vs connect-memcached (express-session + MemcachedStore on the `memcached`
 * client), on the shared memcached. extras() counts the memcached commands each request costs, on a
 * private memcached so that nobody else's traffic is in the numbers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RequestHandler } from 'express';
import { session } from 'keepsake/express';
import { createNode } from 'memcache';
import { expressSession, keepsakeCounter, peerCounter } from './array.bench.js';
import type { BenchApp, BenchApps, BenchGroup } from './harness.js';
import { countSequentialRequests, type StoreCounter } from './sequential.js';

const require = createRequire(import.meta.url);

const SHARED_PORT = 11211;
/** A spare port for extras()' private server (the test files use 11411–11421). */
const PRIVATE_PORT = 11491;
const SEQUENTIAL_REQUESTS = 1_000;
/** Seconds the bench's sessions live, so that they leave the shared server by themselves. */
const LIFETIME_SECONDS = 600;

interface MemcachedStoreOptions {
  hosts: string[];
  prefix: string;
  ttl: number;
}
type MemcachedStoreClass = new (options: MemcachedStoreOptions) => { client: { end(): void } };

function uniqueLabel(label: string): string {
  return `bench_${label}_${randomBytes(3).toString('hex')}`;
}

async function keepsakeMemcached(port: number): Promise<BenchApp> {
  const middleware = session({
    driver: 'memcached',
    savePath: `127.0.0.1:${port}`,
    // The cookie name is also the key prefix: this run's keys cannot meet anyone else's.
    cookieName: uniqueLabel('keepsake'),
    expiration: LIFETIME_SECONDS,
  });
  return {
    middleware: middleware as unknown as RequestHandler,
    ...keepsakeCounter,
    close: () => middleware.manager.shutdown(),
  };
}

async function connectMemcached(port: number): Promise<BenchApp> {
  const expressSessionModule = require('express-session') as object;
  const createStore = require('connect-memcached') as (session: object) => MemcachedStoreClass;
  const MemcachedStore = createStore(expressSessionModule);
  const store = new MemcachedStore({
    hosts: [`127.0.0.1:${port}`],
    prefix: `${uniqueLabel('connect')}:`,
    ttl: LIFETIME_SECONDS,
  });
  return {
    middleware: expressSession(store),
    ...peerCounter,
    close: async () => store.client.end(),
  };
}

export const apps: BenchApps = {
  'keepsake-memcached': () => keepsakeMemcached(SHARED_PORT),
  'connect-memcached': () => connectMemcached(SHARED_PORT),
};

export const groups: BenchGroup[] = [
  {
    title: 'memcached',
    keepsake: 'keepsake-memcached',
    peer: 'connect-memcached',
    requires: { name: 'memcached', host: '127.0.0.1', port: SHARED_PORT },
  },
];

/** The command counters of `stats` that tell which requests a session costs. */
const COUNTERS = {
  get: ['cmd_get'],
  'set/add': ['cmd_set'],
  touch: ['cmd_touch'],
  delete: ['delete_hits', 'delete_misses'],
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

/** `stats` deltas of the private server over the measured requests. */
function statsDeltaCounter(): StoreCounter<Map<string, number>> {
  let before = new Map<string, number>();
  return {
    start: async () => {
      before = await commandCounts(PRIVATE_PORT);
    },
    stop: async () => {
      const after = await commandCounts(PRIVATE_PORT);
      return new Map([...after].map(([name, calls]) => [name, calls - (before.get(name) ?? 0)]));
    },
  };
}

function perRequest(counts: Map<string, number>, count: number): string {
  return [...counts]
    .filter(([, calls]) => calls > 0)
    .map(([name, calls]) => `${name} ${(calls / count).toFixed(2)}`)
    .join(', ');
}

function total(counts: Map<string, number>): number {
  return [...counts.values()].reduce((sum, calls) => sum + calls, 0);
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function startPrivateMemcached(): Promise<ChildProcess | undefined> {
  if (await listening(PRIVATE_PORT)) return undefined;
  const child = spawn(
    'memcached',
    ['-u', 'root', '-l', '127.0.0.1', '-p', String(PRIVATE_PORT), '-m', '64'],
    { stdio: 'ignore' },
  );
  child.once('error', () => {});
  for (let attempt = 0; attempt < 100; attempt += 1) {
    if (await listening(PRIVATE_PORT)) return child;
    if (child.exitCode !== null || child.pid === undefined) return undefined;
    await sleep(50);
  }
  child.kill('SIGKILL');
  return undefined;
}

/** memcached commands per request on an uncontended session, from `stats` deltas. */
export async function extras(): Promise<string[]> {
  const server = await startPrivateMemcached();
  if (server === undefined) {
    return [
      `- memcached commands per request: not measured (could not start memcached on port ${PRIVATE_PORT}).`,
    ];
  }
  try {
    const keepsake = await countSequentialRequests(
      await keepsakeMemcached(PRIVATE_PORT),
      SEQUENTIAL_REQUESTS,
      statsDeltaCounter(),
    );
    const peer = await countSequentialRequests(
      await connectMemcached(PRIVATE_PORT),
      SEQUENTIAL_REQUESTS,
      statsDeltaCounter(),
    );
    return [
      `- **memcached commands per request** (${SEQUENTIAL_REQUESTS} sequential counter requests on one session, \`stats\` deltas):`,
      `  keepsake-memcached **${(total(keepsake) / SEQUENTIAL_REQUESTS).toFixed(2)}** (${perRequest(keepsake, SEQUENTIAL_REQUESTS)}): ` +
        'add lock + get data, then set data + CAS-checked delete of the lock, each pair in one write — 2 round trips, with locking',
      `  connect-memcached **${(total(peer) / SEQUENTIAL_REQUESTS).toFixed(2)}** without any lock (${perRequest(peer, SEQUENTIAL_REQUESTS)})`,
    ];
  } finally {
    if (server.exitCode === null) {
      const exited = once(server, 'exit');
      server.kill('SIGKILL');
      await exited;
    }
  }
}
