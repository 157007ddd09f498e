/**
 * What the per-user index costs a request: keepsake with every session bound to a user
 * (session.bindUser, as after a login) against the same driver with no session bound, on the
 * memory driver and on Redis. "keepsake" in this group's rows is the bound app, its "peer" the
 * unbound one, so the ratio is the throughput kept with the index on.
 */
import type { RequestHandler } from 'express';
import { keepsakeApp } from './array.bench.js';
import type { BenchApp, BenchApps, BenchGroup } from './harness.js';
import { apps as redisApps } from './redis.bench.js';

/** Users the bound sessions are spread over: a few sessions each, as with several devices. */
const USERS = 50;
let bound = 0;

/** Binds each session that holds a counter (so never a visitor who stores nothing) to a user. */
const bindSessions: RequestHandler = (request, _response, next) => {
  const { session } = request;
  if (session.boundUser() === null && session.has('count')) {
    bound += 1;
    session.bindUser(`bench-user-${bound % USERS}`);
  }
  next();
};

async function withBinding(made: Promise<BenchApp>): Promise<BenchApp> {
  const app = await made;
  const sessions = app.middleware;
  if (sessions === null) return app;
  return {
    ...app,
    middleware: (request, response, next) =>
      sessions(request, response, (error?: unknown) =>
        error === undefined ? bindSessions(request, response, next) : next(error),
      ),
  };
}

const redisApp = redisApps['keepsake-redis'];
if (redisApp === undefined) throw new Error('bench: redis.bench.ts has no keepsake-redis app');

export const apps: BenchApps = {
  'keepsake-array-bound': () => withBinding(keepsakeApp({ driver: 'array' })),
  'keepsake-array-unbound': () => keepsakeApp({ driver: 'array' }),
  'keepsake-redis-bound': (store) => withBinding(redisApp(store)),
  'keepsake-redis-unbound': (store) => redisApp(store),
};

export const groups: BenchGroup[] = [
  {
    title: 'user index on vs off (memory; bound ÷ unbound)',
    keepsake: 'keepsake-array-bound',
    peer: 'keepsake-array-unbound',
  },
  {
    title: 'user index on vs off (redis; bound ÷ unbound)',
    keepsake: 'keepsake-redis-bound',
    peer: 'keepsake-redis-unbound',
    requires: { name: 'Redis', host: '127.0.0.1', port: 6379 },
  },
];
