/**
 * Fastify: keepsake's plugin (array driver) vs @fastify/session with its default memory store, and
 * a bare Fastify app, on the same counter route and load as the other groups.
 *
 * The harness's server (bench/server.ts) hosts Express middleware only, so this file is its own
 * server: the harness starts it as the server process (FASTIFY_BENCH_APP=<app>) and loads it like
 * the others, and `extras()` reports the group in the harness's table format.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyPluginCallback } from 'fastify';
import { session } from 'keepsake/fastify';
import type { BenchApps, BenchGroup } from './harness.js';
import { measureRounds, measureServer } from './harness.js';
import { markdownTable } from './report.js';

/** The Express-hosted apps of the harness: none, this file measures Fastify apps itself. */
export const apps: BenchApps = {};
export const groups: BenchGroup[] = [];

const KEEPSAKE = 'keepsake-fastify-array';
const PEER = 'fastify-session-memory';
const BARE = 'bare-fastify';
type AppName = typeof KEEPSAKE | typeof PEER | typeof BARE;

/** The counter as each app reads and writes it. */
interface Counter {
  read(request: unknown): number;
  write(request: unknown, value: number): void;
}

interface CounterSession {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
}
const sessionOf = (request: unknown) => (request as { session: CounterSession }).session;
const sessionCounter: Counter = {
  read: (request) => Number(sessionOf(request).get('count') ?? 0),
  write: (request, value) => sessionOf(request).set('count', value),
};

async function buildApp(name: AppName): Promise<FastifyInstance> {
  const app = Fastify();
  let counter: Counter = { read: () => 0, write: () => {} };
  if (name === KEEPSAKE) {
    await app.register(session({ driver: 'array' }));
    counter = sessionCounter;
  } else if (name === PEER) {
    // Loaded untyped: its declaration of request.session would clash with keepsake's.
    const require = createRequire(import.meta.url);
    await app.register(require('@fastify/cookie') as FastifyPluginCallback);
    await app.register(
      require('@fastify/session') as FastifyPluginCallback<Record<string, unknown>>,
      {
        secret: 'keepsake-bench-secret-of-at-least-32-characters',
        cookie: { secure: false },
        saveUninitialized: true,
      },
    );
    counter = sessionCounter;
  }
  app.get('/', async (request) => {
    const count = counter.read(request) + 1;
    counter.write(request, count);
    return { count };
  });
  return app;
}

// ── server mode: this file started as the bench server of one app ─────────────────────────────

const serving = process.env.FASTIFY_BENCH_APP as AppName | undefined;
if (serving !== undefined) {
  const app = await buildApp(serving);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
  process.once('SIGTERM', () => {
    app.server.closeAllConnections();
    void app.close().finally(() => process.exit(0));
  });
}

// ── runner ───────────────────────────────────────────────────────────────────────────────────

const thisFile = fileURLToPath(import.meta.url);

const measureFastify = (name: string) =>
  measureServer(name, { script: thisFile, env: { FASTIFY_BENCH_APP: name } }, name === BARE);

/** Runs the Fastify group and returns its table (same columns as the harness's). */
export async function extras(): Promise<string[]> {
  process.stdout.write('fastify (own runner): ');
  const measured = await measureRounds([BARE, KEEPSAKE, PEER], measureFastify, (text) =>
    process.stdout.write(text),
  );
  process.stdout.write('\n');
  const result = (name: AppName) => {
    const found = measured.get(name);
    if (found === undefined) throw new Error(`bench: ${name} was not measured`);
    return found;
  };
  const [bare, keepsake, peer] = [result(BARE), result(KEEPSAKE), result(PEER)];
  const group: BenchGroup = { title: 'fastify memory', keepsake: KEEPSAKE, peer: PEER };
  return [
    '**Fastify** (keepsake plugin, array driver, vs @fastify/session with its memory store; bare Fastify as the ceiling):',
    '',
    markdownTable([{ group, bare, keepsake, peer }]),
  ];
}
