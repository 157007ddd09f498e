/** The array (memory) driver vs express-session's MemoryStore. */
import { createRequire } from 'node:module';
import type { RequestHandler } from 'express';
import { session } from 'keepsake/express';
import type { BenchApps, BenchGroup } from './harness.js';

const require = createRequire(import.meta.url);

/** express-session's request view: the counter is a plain property of req.session. */
export type PeerSessionRequest = { session: Record<string, unknown> };

/** express-session with a given store, configured as its docs recommend for a counter app. */
export function expressSession(store?: unknown): RequestHandler {
  const expressSessionFactory = require('express-session') as (options: object) => RequestHandler;
  return expressSessionFactory({
    secret: 'keepsake-bench',
    resave: false,
    saveUninitialized: true,
    ...(store === undefined ? {} : { store }),
  });
}

/** read/write of the counter for express-session based peers. */
export const peerCounter = {
  read: (request: unknown) => Number((request as PeerSessionRequest).session.count ?? 0),
  write: (request: unknown, value: number) => {
    (request as PeerSessionRequest).session.count = value;
  },
};

/** read/write of the counter for keepsake. */
export const keepsakeCounter = {
  read: (request: unknown) =>
    Number((request as { session: { get(key: string): unknown } }).session.get('count') ?? 0),
  write: (request: unknown, value: number) => {
    (request as { session: { set(key: string, value: unknown): void } }).session.set(
      'count',
      value,
    );
  },
};

export const apps: BenchApps = {
  'keepsake-array': async () => {
    const middleware = session({ driver: 'array' });
    return {
      middleware: middleware as unknown as RequestHandler,
      ...keepsakeCounter,
      close: () => middleware.manager.shutdown(),
    };
  },
  'express-session-memory': async () => ({ middleware: expressSession(), ...peerCounter }),
  'floor-middleware': async () => ({ middleware: floorMiddleware, ...keepsakeCounter }),
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
