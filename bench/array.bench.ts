/** The array (memory) driver vs express-session's MemoryStore. */
import { createRequire } from 'node:module';
import type { RequestHandler } from 'express';
import { type SessionMiddleware, type SessionMiddlewareOptions, session } from 'keepsake/express';
import type { BenchApp, BenchApps, BenchGroup } from './harness.js';
import { methodSession, propertySession } from './workloads.js';

const require = createRequire(import.meta.url);

/** keepsake's default session lifetime (CodeIgniter's sess_expiration); the peers' cookies get it too. */
export const SESSION_LIFETIME_SECONDS = 7200;

/**
 * keepsake's Express middleware with `config`. Garbage collection of expired sessions is off, as
 * the peers' pruning timers are, so that neither side is measured doing housekeeping (and the
 * counted phase counts the requests' own work only). `cleanUp` runs after the shutdown, or when
 * the middleware fails to start.
 */
export async function keepsakeApp(
  config: SessionMiddlewareOptions,
  cleanUp?: () => Promise<void>,
): Promise<BenchApp> {
  let middleware: SessionMiddleware;
  try {
    middleware = session({ gcProbability: 0, ...config });
    await middleware.manager.ready();
  } catch (error) {
    await cleanUp?.();
    throw error;
  }
  return {
    middleware: middleware as unknown as RequestHandler,
    session: methodSession,
    close: async () => {
      await middleware.manager.shutdown();
      await cleanUp?.();
    },
  };
}

/**
 * express-session with a store, as the stores' READMEs recommend: `resave: false` (an unchanged
 * session is only touched), `saveUninitialized: false` (a visitor who stores nothing gets no
 * session), and a cookie that lives as long as keepsake's sessions.
 */
export function expressSession(
  store?: unknown,
  lifetimeSeconds = SESSION_LIFETIME_SECONDS,
): RequestHandler {
  const expressSessionFactory = require('express-session') as (options: object) => RequestHandler;
  return expressSessionFactory({
    secret: 'keepsake-bench',
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: lifetimeSeconds * 1000 },
    ...(store === undefined ? {} : { store }),
  });
}

/** express-session with `store`; `cleanUp` runs when the server stops. */
export function peerApp(store?: unknown, cleanUp?: () => Promise<void>, lifetimeSeconds?: number) {
  return {
    middleware: expressSession(store, lifetimeSeconds),
    session: propertySession,
    ...(cleanUp === undefined ? {} : { close: cleanUp }),
  } satisfies BenchApp;
}

export const apps: BenchApps = {
  'keepsake-array': () => keepsakeApp({ driver: 'array' }),
  'express-session-memory': async () => peerApp(),
  'floor-middleware': async () => ({ middleware: floorMiddleware, session: methodSession }),
};

/**
 * The least any session middleware on Express does: give the request a session object and hold
 * `end()` until the (here instant) save is done. No cookie, no store, no lock. What it costs is the
 * floor under every session library's throughput on Express, keepsake's included.
 */
const floorMiddleware: RequestHandler = (request, response, next) => {
  const data = new Map<string, unknown>();
  (request as unknown as { session: unknown }).session = {
    get: (key: string) => data.get(key),
    set: (key: string, value: unknown) => data.set(key, value),
  };
  const end = response.end;
  response.end = function endAfterSave(this: typeof response, ...args: unknown[]) {
    queueMicrotask(() => Reflect.apply(end, this, args));
    return this;
  } as typeof response.end;
  response.on('close', () => {});
  next();
};

export const groups: BenchGroup[] = [
  {
    title: 'memory',
    keepsake: 'keepsake-array',
    peer: 'express-session-memory',
    reference: 'floor-middleware',
  },
];
