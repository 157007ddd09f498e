/**
 * Fastify: keepsake's plugin (array driver) vs @fastify/session with its default memory store, and
 * a bare Fastify app, on the same routes and load as the other groups.
 *
 * The harness's server (bench/server.ts) hosts Express middleware only, so this file is the
 * group's server: the harness runs it as the server process of each of its apps (BENCH_APP=<app>).
 */
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyPluginCallback } from 'fastify';
import { session } from 'keepsake/fastify';
import { SESSION_LIFETIME_SECONDS } from './array.bench.js';
import type { BenchApps, BenchGroup } from './harness.js';
import { methodSession, ROUTES, type SessionAccess } from './workloads.js';

/** The Express-hosted apps of the harness: none, this file serves its apps itself. */
export const apps: BenchApps = {};

const KEEPSAKE = 'keepsake-fastify-array';
const PEER = 'fastify-session-memory';
const BARE = 'bare-fastify';

const thisFile = fileURLToPath(import.meta.url);

export const groups: BenchGroup[] = [
  { title: 'fastify memory', keepsake: KEEPSAKE, peer: PEER, bare: BARE, server: thisFile },
];

async function buildApp(name: string): Promise<FastifyInstance> {
  const app = Fastify();
  let access: SessionAccess | null = null;
  if (name === KEEPSAKE) {
    // Expired-session GC off, as in every keepsake app of the bench (see keepsakeApp()).
    await app.register(session({ driver: 'array', gcProbability: 0 }));
    access = methodSession;
  } else if (name === PEER) {
    // Loaded untyped: its declaration of request.session would clash with keepsake's.
    const require = createRequire(import.meta.url);
    await app.register(require('@fastify/cookie') as FastifyPluginCallback);
    await app.register(
      require('@fastify/session') as FastifyPluginCallback<Record<string, unknown>>,
      {
        secret: 'keepsake-bench-secret-of-at-least-32-characters',
        cookie: { secure: false, maxAge: SESSION_LIFETIME_SECONDS * 1000 },
        saveUninitialized: false,
      },
    );
    access = methodSession;
  } else if (name !== BARE) {
    throw new Error(`bench: fastify.bench.ts has no app "${name}"`);
  }
  for (const [route, handle] of Object.entries(ROUTES)) {
    app.get(route, async (request, reply) => {
      const { status, body } = handle(access, request, request.url);
      reply.code(status);
      return body;
    });
  }
  return app;
}

// Started as a server process by the harness (not imported): serve one app.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const app = await buildApp(process.env.BENCH_APP ?? BARE);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
  process.once('SIGTERM', () => {
    app.server.closeAllConnections();
    void app.close().finally(() => process.exit(0));
  });
}
